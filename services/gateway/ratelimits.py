"""Rate limits of the gateway, in one module, shared by every gateway replica.

- failed sign-ins per user id and per client address;
- joins (and member tokens) with a wrong room secret per client address and per room;
- failed credentials (API key, access or member token) per client address;
- every request made with an API key, per key.

Counters live in a NATS KV bucket (`services.runtime.kv_limits`), so every
gateway replica counts the same failures.  Failures are counted only once they
happened; a limited caller gets 429 with `Retry-After` before its credential or
secret is even checked.  The per-key request budget is counted in this replica
and added to the shared counter a few times a second (`RequestBudget`), so a
busy key costs one KV write per replica per interval, not one per request.
`MEETPLANE_RATE_LIMITS_ENABLED=false` turns every limit off (tests that make
hundreds of wrong calls on purpose).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import nats.errors
import nats.js.errors
from fastapi import Request
from limits import RateLimitItem, parse
from limits.aio.strategies import FixedWindowRateLimiter

from services.gateway.errors import ApiError
from services.runtime.kv_limits import NatsKVStorage
from services.runtime.logging import get_logger

log = get_logger("meetplane.gateway.ratelimits")
T = TypeVar("T")


def client_address(request: Request) -> str:
    """The caller's address (uvicorn takes it from X-Forwarded-For only from trusted
    proxies: `MEETPLANE_FORWARDED_ALLOW_IPS`)."""
    return request.client.host if request.client else "unknown"


def rate_limits(request: Request) -> RateLimits:
    """The app's rate limits."""
    limits: RateLimits = request.app.state.rate_limits
    return limits


# What the shared counters raise while NATS or JetStream is unavailable.
STORE_UNAVAILABLE = (nats.errors.Error, nats.js.errors.Error)


def too_many(message: str, reset_time: float) -> ApiError:
    """429 with `Retry-After` (whole seconds until the window ends, at least one)."""
    retry = max(1, math.ceil(reset_time - time.time()))
    return ApiError(429, "Too Many Requests", message, headers={"Retry-After": str(retry)})


class FailureLimit:
    """Failures allowed per key in each of several scopes (user and address, room and ...)."""

    def __init__(
        self, limiter: FixedWindowRateLimiter, rules: Sequence[tuple[str, str]], message: str
    ) -> None:
        self.limiter = limiter
        self.rules: list[tuple[RateLimitItem, str]] = [
            (parse(limit), scope) for limit, scope in rules
        ]
        self.message = message

    async def check(self, *who: str) -> None:
        """429 when any of the keys used up its failures.

        While the shared counters cannot be read (a NATS node down, JetStream
        electing a leader) the attempt is let through, as `RequestBudget` does:
        refusing every credential for those seconds would take the API down
        with NATS, for the few guesses an attacker gains.
        """
        for (item, scope), key in zip(self.rules, who, strict=True):
            try:
                if await self.limiter.test(item, scope, key):
                    continue
                stats = await self.limiter.get_window_stats(item, scope, key)
            except STORE_UNAVAILABLE as exc:
                log.warning("ratelimit.read_failed", scope=scope, error=type(exc).__name__)
                continue
            log.warning("ratelimit.refused", scope=scope)
            raise too_many(self.message, stats.reset_time)

    async def failed(self, *who: str) -> None:
        """Count one failure against every key (not counted while the counters are away)."""
        for (item, scope), key in zip(self.rules, who, strict=True):
            try:
                await self.limiter.hit(item, scope, key)
            except STORE_UNAVAILABLE as exc:
                log.warning("ratelimit.count_failed", scope=scope, error=type(exc).__name__)

    async def guard(
        self, who: Sequence[str], attempt: Callable[[], Awaitable[T]], failures: set[int]
    ) -> T:
        """Check, run `attempt()`, and count it when it fails with one of `failures`."""
        await self.check(*who)
        try:
            return await attempt()
        except ApiError as exc:
            if exc.status in failures:
                await self.failed(*who)
            raise


class RequestBudget:
    """Requests allowed per key, counted locally and merged into the shared counter.

    A decision uses the shared count last seen plus this replica's hits not yet
    merged; every `interval` seconds the hits are added to the KV counter in one
    compare-and-set.  Replicas may overshoot by what they admit in one interval.
    """

    def __init__(self, storage: NatsKVStorage, limit: str, interval: float = 0.25) -> None:
        self.storage = storage
        self.item = parse(limit)
        self.interval = interval
        self.pending: dict[str, int] = {}
        # Hits being merged: still counted here until the merge returns the new total.
        self.merging: dict[str, int] = {}
        self.known: dict[str, tuple[int, float]] = {}  # key -> (shared count, window end)
        self._flusher: asyncio.Task[None] | None = None

    def _storage_key(self, key: str) -> str:
        return self.item.key_for("api-key", key)

    async def hit(self, key: str) -> None:
        """Admit one request of `key`, or 429 once its budget for the window is spent."""
        count, ends = self.known.get(key, (0, 0.0))
        if ends <= time.time():
            # New here, or a new window: read what the other replicas counted.
            count, ends = await self._shared(key)
        unmerged = self.pending.get(key, 0) + self.merging.get(key, 0)
        if count + unmerged >= self.item.amount:
            raise too_many("Too many requests for this API key, please slow down", ends)
        self.pending[key] = self.pending.get(key, 0) + 1
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_soon())

    async def _shared(self, key: str) -> tuple[int, float]:
        storage_key = self._storage_key(key)
        try:
            count = await self.storage.get(storage_key)
            ends = await self.storage.get_expiry(storage_key) if count else 0.0
        except Exception as exc:  # NATS away: count from zero here until it is back
            log.warning("ratelimit.read_failed", error=type(exc).__name__)
            return 0, 0.0
        if count:
            self.known[key] = (count, ends)
        return count, ends

    async def _flush_soon(self) -> None:
        # Until every hit is merged: a merge that failed (NATS away, a KV request
        # timed out) is tried again, not left until some later request is admitted;
        # a key that is over its budget admits none, so its hits stayed unmerged.
        while True:
            await asyncio.sleep(self.interval)
            await self.flush()
            if not self.pending:
                return

    async def flush(self) -> None:
        """Add the pending hits to the shared counters and learn their totals."""
        pending, self.pending = self.pending, {}
        for key, hits in pending.items():
            self.merging[key] = self.merging.get(key, 0) + hits
            try:
                storage_key = self._storage_key(key)
                total = await self.storage.incr(storage_key, self.item.get_expiry(), hits)
                self.known[key] = (total, await self.storage.get_expiry(storage_key))
            except Exception as exc:  # NATS away: keep counting here, merge next time
                self.pending[key] = self.pending.get(key, 0) + hits
                log.warning("ratelimit.flush_failed", error=type(exc).__name__)
            finally:
                left = self.merging.pop(key, 0) - hits
                if left > 0:
                    self.merging[key] = left

    async def close(self) -> None:
        """Stop the pending merge."""
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._flusher


class RateLimits:
    """Every limit of the gateway (see the module docstring), or none when disabled."""

    def __init__(
        self,
        storage: NatsKVStorage,
        *,
        enabled: bool = True,
        login_per_user: str,
        login_per_address: str,
        join_per_address: str,
        join_per_room: str,
        credentials_per_address: str,
        requests_per_api_key: str,
    ) -> None:
        limiter = FixedWindowRateLimiter(storage)
        self.enabled = enabled
        self.login = FailureLimit(
            limiter,
            [(login_per_user, "login-user"), (login_per_address, "login-address")],
            "Too many failed sign-ins, please try again later",
        )
        self.join = FailureLimit(
            limiter,
            [(join_per_address, "secret-address"), (join_per_room, "secret-room")],
            "Too many wrong room secrets, please try again later",
        )
        self.credentials = FailureLimit(
            limiter,
            [(credentials_per_address, "credential-address")],
            "Too many invalid credentials, please try again later",
        )
        self.api_keys = RequestBudget(storage, requests_per_api_key)

    async def login_attempt(
        self, user_id: str, address: str, attempt: Callable[[], Awaitable[T]]
    ) -> T:
        """A sign-in (`attempt()`); a 401 from the identity service counts as a failure."""
        if not self.enabled:
            return await attempt()
        return await self.login.guard((user_id, address), attempt, {401})

    async def secret_attempt(
        self, address: str, room_id: str, attempt: Callable[[], Awaitable[T]], failures: set[int]
    ) -> T:
        """A use of a room secret (join, member token); `failures` say it was wrong."""
        if not self.enabled:
            return await attempt()
        return await self.join.guard((address, room_id), attempt, failures)

    async def credential_attempt(self, address: str, attempt: Callable[[], Awaitable[T]]) -> T:
        """Checking a presented credential; a 401 counts as a failure."""
        if not self.enabled:
            return await attempt()
        return await self.credentials.guard((address,), attempt, {401})

    async def api_key_request(self, key_id: str) -> None:
        """One request made with the API key `key_id`."""
        if self.enabled:
            await self.api_keys.hit(key_id)

    async def close(self) -> None:
        """Stop background merging."""
        await self.api_keys.close()
