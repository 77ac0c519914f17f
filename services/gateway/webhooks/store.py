"""Webhook state in JetStream key-value buckets, shared by every gateway replica.

- `meetplane_config` / `webhooks`: OpenVidu Meet v3.8.0's global webhook (`enabled`, `url`).
- `meetplane_webhooks`: the 3.9 line's webhook resources, one key per `webhookId`.
- `meetplane_webhook_log`: one delivery record per subscriber and event
  (`<webhookId>.<eventId>`; the v3.8.0 global webhook is `global`), expiring.
- `meetplane_webhook_payloads`: the body data built once per event, so every
  subscriber and every retry sends the same payload.

The gateway keeps nothing in memory that another replica would need.
"""

from __future__ import annotations

import json
import secrets
import string
from typing import Any

from nats.aio.client import Client
from nats.js.api import KeyValueConfig
from nats.js.errors import BucketNotFoundError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from pydantic import BaseModel, ConfigDict, Field

CONFIG_BUCKET, CONFIG_KEY = "meetplane_config", "webhooks"
WEBHOOKS_BUCKET = "meetplane_webhooks"
LOG_BUCKET = "meetplane_webhook_log"
PAYLOADS_BUCKET = "meetplane_webhook_payloads"
GLOBAL = "global"
MAX_WEBHOOKS = 20
LOG_TTL_SECONDS = 7 * 24 * 3600
MAX_HISTORY = 20


class GlobalWebhook(BaseModel):
    """OpenVidu Meet v3.8.0's webhooks config."""

    enabled: bool = False
    url: str | None = None


class Webhook(BaseModel):
    """A 3.9 webhook resource (`meet-webhook-endpoint`)."""

    webhookId: str
    url: str
    events: list[str] | None = None
    roomId: str | None = None
    enabled: bool = True
    creationDate: int

    def wants(self, event: str, room_id: str | None) -> bool:
        """Whether an event of a room is delivered to this webhook."""
        if not self.enabled:
            return False
        if self.events is not None and event not in self.events:
            return False
        return self.roomId is None or self.roomId == room_id


class Attempt(BaseModel):
    """One delivery attempt: when, the receiver's status (or none), the error."""

    date: int
    statusCode: int | None = None
    error: str | None = None
    resend: bool = False


class Delivery(BaseModel):
    """The delivery log of one event to one subscriber."""

    model_config = ConfigDict(extra="ignore")

    deliveryId: str
    webhookId: str
    event: str
    creationDate: int
    status: str = "pending"  # pending | delivered | failed
    attempts: int = 0
    lastStatusCode: int | None = None
    lastError: str | None = None
    lastAttemptDate: int | None = None
    history: list[Attempt] = Field(default_factory=list)
    payload: dict[str, Any]

    def record(self, attempt: Attempt, ok: bool, final: bool = False) -> None:
        """Add an attempt; `final` marks a failure no retry follows."""
        self.attempts += 1
        self.lastStatusCode = attempt.statusCode
        self.lastError = attempt.error
        self.lastAttemptDate = attempt.date
        self.history = [*self.history, attempt][-MAX_HISTORY:]
        if ok:
            self.status = "delivered"
        elif final:
            self.status = "failed"


def new_webhook_id() -> str:
    """`wh-` and 15 random lowercase letters and digits, like OpenVidu Meet's."""
    alphabet = string.ascii_lowercase + string.digits
    return "wh-" + "".join(secrets.choice(alphabet) for _ in range(15))


class WebhookStore:
    """Reads and writes of the webhook buckets."""

    def __init__(self, connection: Client, replicas: int = 1) -> None:
        self.js = connection.jetstream()
        self.replicas = replicas
        self._buckets: dict[str, KeyValue] = {}

    async def _kv(self, bucket: str) -> KeyValue:
        if bucket in self._buckets:
            return self._buckets[bucket]
        try:
            kv = await self.js.key_value(bucket)
        except BucketNotFoundError:
            ttl = LOG_TTL_SECONDS if bucket in (LOG_BUCKET, PAYLOADS_BUCKET) else 0
            kv = await self.js.create_key_value(
                KeyValueConfig(bucket=bucket, history=1, ttl=ttl or None, replicas=self.replicas)
            )
        self._buckets[bucket] = kv
        return kv

    # ---- the v3.8.0 global webhook ------------------------------------------------------

    async def global_config(self) -> GlobalWebhook:
        """The global webhook (disabled when never set)."""
        kv = await self._kv(CONFIG_BUCKET)
        try:
            entry = await kv.get(CONFIG_KEY)
        except KeyNotFoundError:
            return GlobalWebhook()
        return GlobalWebhook.model_validate_json(entry.value or b"{}")

    async def put_global_config(self, config: GlobalWebhook) -> None:
        """Replace the global webhook."""
        kv = await self._kv(CONFIG_BUCKET)
        await kv.put(CONFIG_KEY, config.model_dump_json().encode())

    # ---- 3.9 webhook resources ----------------------------------------------------------

    @staticmethod
    async def _keys(kv: KeyValue, pattern: str = ">") -> list[str]:
        # A server-side filtered watch (nats-py's `keys(filters=…)` filters client-side).
        watcher = await kv.watch(pattern, ignore_deletes=True, meta_only=True)
        keys: list[str] = []
        try:
            async for entry in watcher:
                if entry is None:  # the end of what is stored now
                    break
                keys.append(entry.key)
        finally:
            await watcher.stop()
        return keys

    async def webhooks(self) -> list[Webhook]:
        """Every registered webhook, oldest first."""
        kv = await self._kv(WEBHOOKS_BUCKET)
        keys = await self._keys(kv)
        found = [w for w in [await self.webhook(k) for k in keys] if w is not None]
        return sorted(found, key=lambda w: (w.creationDate, w.webhookId))

    async def webhook(self, webhook_id: str) -> Webhook | None:
        """One webhook, or None."""
        kv = await self._kv(WEBHOOKS_BUCKET)
        try:
            entry = await kv.get(webhook_id)
        except (KeyNotFoundError, ValueError):
            return None
        return Webhook.model_validate_json(entry.value) if entry.value else None

    async def put_webhook(self, webhook: Webhook) -> None:
        """Create or replace a webhook."""
        kv = await self._kv(WEBHOOKS_BUCKET)
        await kv.put(webhook.webhookId, webhook.model_dump_json().encode())

    async def delete_webhook(self, webhook_id: str) -> None:
        """Remove a webhook's definition."""
        kv = await self._kv(WEBHOOKS_BUCKET)
        await kv.purge(webhook_id)

    # ---- payloads and delivery log ------------------------------------------------------

    async def payload(self, key: str) -> dict[str, Any] | None:
        """A stored payload, or None."""
        kv = await self._kv(PAYLOADS_BUCKET)
        try:
            entry = await kv.get(key)
        except KeyNotFoundError:
            return None
        return json.loads(entry.value) if entry.value else None

    async def keep_payload(self, key: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Store a payload unless one is there already; returns the stored one."""
        kv = await self._kv(PAYLOADS_BUCKET)
        try:
            await kv.create(key, json.dumps(payload).encode())
        except KeyWrongLastSequenceError:
            stored = await self.payload(key)
            if stored is not None:
                return stored
        return payload

    async def put_payload(self, key: str, payload: dict[str, Any]) -> None:
        """Store or replace a payload."""
        kv = await self._kv(PAYLOADS_BUCKET)
        await kv.put(key, json.dumps(payload).encode())

    async def delivery(self, webhook_id: str, delivery_id: str) -> Delivery | None:
        """One delivery record, or None."""
        kv = await self._kv(LOG_BUCKET)
        try:
            entry = await kv.get(f"{webhook_id}.{delivery_id}")
        except (KeyNotFoundError, ValueError):
            return None
        return Delivery.model_validate_json(entry.value) if entry.value else None

    async def put_delivery(self, delivery: Delivery) -> None:
        """Write a delivery record."""
        kv = await self._kv(LOG_BUCKET)
        await kv.put(
            f"{delivery.webhookId}.{delivery.deliveryId}", delivery.model_dump_json().encode()
        )

    async def deliveries(self, webhook_id: str, limit: int) -> list[Delivery]:
        """A subscriber's most recent deliveries, newest first."""
        kv = await self._kv(LOG_BUCKET)
        keys = await self._keys(kv, f"{webhook_id}.>")
        records = []
        for key in keys:
            found = await self.delivery(webhook_id, key.split(".", 1)[1])
            if found is not None:
                records.append(found)
        records.sort(key=lambda d: (d.creationDate, d.deliveryId), reverse=True)
        return records[:limit]
