"""A `limits` storage on a NATS JetStream key-value bucket, so every replica shares counters.

`limits` (the rate-limiting library) keeps its counters in a storage; its own
back ends need Redis, Memcached or MongoDB, which meetplane does not run.
Every meetplane process already talks to NATS, so this storage keeps each
counter as one KV entry `{"count", "expires"}` updated with compare-and-set
(the entry's revision), which is safe across replicas.  Fixed-window
strategies only use `incr`, `get`, `get_expiry` and `clear`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from typing import Any

import nats
from limits.aio.storage import Storage
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

BUCKET = "meetplane_ratelimits"


async def rate_limit_bucket(nc: nats.NATS, ttl_seconds: float = 24 * 3600) -> KeyValue:
    """The shared bucket (created if missing); entries older than a day are dropped."""
    from nats.js.api import KeyValueConfig

    js = nc.jetstream()
    try:
        return await js.key_value(BUCKET)
    except Exception:  # not there yet: create it (a concurrent creator makes the same)
        return await js.create_key_value(KeyValueConfig(bucket=BUCKET, history=1, ttl=ttl_seconds))


def _kv_key(key: str) -> str:
    # KV keys must be subject tokens; limiter keys may hold ':' (IPv6) or spaces.
    return hashlib.sha256(key.encode()).hexdigest()


class NatsKVStorage(Storage):
    """Fixed-window counters in a NATS KV bucket."""

    STORAGE_SCHEME = ["meetplane+natskv"]

    def __init__(self, kv: KeyValue, attempts: int = 50) -> None:
        super().__init__()
        self.kv = kv
        self.attempts = attempts

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        """Errors that mean the storage is unwell."""
        return (nats.errors.Error, nats.js.errors.Error)

    async def _read(self, key: str) -> tuple[dict[str, Any] | None, int | None]:
        try:
            entry = await self.kv.get(_kv_key(key))
        except KeyNotFoundError:
            return None, None
        if not entry.value:
            return None, entry.revision
        return json.loads(entry.value), entry.revision

    async def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        """Add `amount` to the window's counter, starting a new window when it expired."""
        for _ in range(self.attempts):
            value, revision = await self._read(key)
            now = time.time()
            if value is None or value["expires"] <= now:
                new = {"count": amount, "expires": now + expiry}
            else:
                new = {"count": value["count"] + amount, "expires": value["expires"]}
            data = json.dumps(new).encode()
            try:
                if revision is None:
                    await self.kv.create(_kv_key(key), data)
                else:
                    await self.kv.update(_kv_key(key), data, last=revision)
            except KeyWrongLastSequenceError:
                continue  # another replica counted first: read again
            return int(new["count"])
        raise RuntimeError("rate limit counter kept changing under us")

    async def get(self, key: str) -> int:
        """The window's counter (0 when none or expired)."""
        value, _ = await self._read(key)
        if value is None or value["expires"] <= time.time():
            return 0
        return int(value["count"])

    async def get_expiry(self, key: str) -> float:
        """When the window ends (now when there is none)."""
        value, _ = await self._read(key)
        return float(value["expires"]) if value else time.time()

    async def check(self) -> bool:
        """Whether the bucket answers."""
        try:
            await self.kv.status()
        except Exception:
            return False
        return True

    async def reset(self) -> int | None:
        """Not supported for a shared bucket (it would reset every replica's limits)."""
        return None

    async def clear(self, key: str) -> None:
        """Forget one counter."""
        with contextlib.suppress(KeyNotFoundError):
            await self.kv.delete(_kv_key(key))
