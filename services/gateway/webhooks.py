"""Outbound HTTP webhooks (OpenVidu Meet names), signed and retried.

The gateway keeps no state of its own: the subscriber configuration lives in a
JetStream key-value bucket, and delivery is a durable JetStream consumer shared
by all gateway replicas.  A failed delivery is nak'ed with an increasing delay,
so JetStream redelivers it (at least once, up to `MAX_DELIVERIES` tries);
receivers recognise repeats by the `X-Event-Id` header.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import httpx
from faststream import AckPolicy
from faststream.nats import JStream, NatsBroker, NatsMessage, PullSub
from nats.js.api import AckPolicy as JsAckPolicy
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import BucketNotFoundError, KeyNotFoundError
from pydantic import BaseModel, ConfigDict, Field, HttpUrl

from services.runtime.logging import get_logger

log = get_logger("meetplane.webhooks")

BUCKET = "meetplane_config"
KEY = "webhooks"
MAX_DELIVERIES = 10
BACKOFF_SECONDS = (1, 2, 5, 10, 30, 60, 120, 300, 600)

# Integration event type → OpenVidu Meet webhook event name.
WEBHOOK_EVENTS = {
    "MeetingStarted": "meetingStarted",
    "MeetingEnded": "meetingEnded",
    "RecordingStarted": "recordingStarted",
    "RecordingStopped": "recordingUpdated",
    "RecordingFailed": "recordingUpdated",
    "RecordingReady": "recordingEnded",
}


class WebhookConfig(BaseModel):
    """GET/PUT /api/v1/config/webhooks body."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    url: HttpUrl | None = None
    events: list[str] = Field(default_factory=lambda: sorted(set(WEBHOOK_EVENTS.values())))


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """HMAC-SHA256 of `timestamp.body` with the API key, hex."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def webhook_payload(envelope: dict[str, Any]) -> dict[str, Any] | None:
    """The OpenVidu Meet webhook body for an integration event, or None if not sent."""
    name = WEBHOOK_EVENTS.get(envelope.get("type", ""))
    if name is None:
        return None
    return {"event": name, "creationDate": _ms(envelope["occurred_at"]), "data": envelope["data"]}


def _ms(iso: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


class WebhookConfigStore:
    """The subscriber configuration in a JetStream KV bucket (shared by every gateway)."""

    def __init__(self, broker: NatsBroker) -> None:
        self.broker = broker

    async def _kv(self) -> Any:
        connection = self.broker._connection
        assert connection is not None
        js = connection.jetstream()
        try:
            return await js.key_value(BUCKET)
        except BucketNotFoundError:
            return await js.create_key_value(bucket=BUCKET, history=5)

    async def get(self) -> WebhookConfig:
        """The current configuration (disabled when never set)."""
        kv = await self._kv()
        try:
            entry = await kv.get(KEY)
        except KeyNotFoundError:
            return WebhookConfig()
        return WebhookConfig.model_validate_json(entry.value or b"{}")

    async def put(self, config: WebhookConfig) -> None:
        """Replace the configuration."""
        kv = await self._kv()
        await kv.put(KEY, config.model_dump_json().encode())


class WebhookSender:
    """Posts signed webhook bodies."""

    def __init__(self, secret: str, timeout: float = 10.0) -> None:
        self.secret = secret
        self.client = httpx.AsyncClient(timeout=timeout)

    async def send(self, url: str, payload: dict[str, Any], event_id: str) -> httpx.Response:
        """One delivery attempt; raises on transport errors."""
        body = json.dumps(payload, separators=(",", ":")).encode()
        timestamp = int(time.time() * 1000)
        headers = {
            "content-type": "application/json",
            "X-Timestamp": str(timestamp),
            "X-Signature": sign(self.secret, timestamp, body),
            "X-Event-Id": event_id,
        }
        return await self.client.post(url, content=body, headers=headers)

    async def close(self) -> None:
        """Close the HTTP client."""
        await self.client.aclose()


def register_webhook_delivery(
    broker: NatsBroker, store: WebhookConfigStore, sender: WebhookSender, stream: str
) -> None:
    """The durable consumer that delivers integration events to the configured subscriber."""

    @broker.subscriber(
        "meetplane.evt.>",
        stream=JStream(stream, declare=False),
        durable="gateway-webhooks",
        config=ConsumerConfig(
            durable_name="gateway-webhooks",
            ack_policy=JsAckPolicy.EXPLICIT,
            ack_wait=60,
            deliver_policy=DeliverPolicy.NEW,
            max_deliver=MAX_DELIVERIES,
            max_ack_pending=100,
        ),
        pull_sub=PullSub(batch_size=10, timeout=1.0),
        ack_policy=AckPolicy.MANUAL,
        title="gateway-webhooks",
    )
    async def deliver(body: Any, msg: NatsMessage) -> None:
        payload = webhook_payload(body) if isinstance(body, dict) else None
        if payload is None:
            await msg.ack()
            return
        config = await store.get()
        if not config.enabled or config.url is None or payload["event"] not in config.events:
            await msg.ack()
            return
        attempt = msg.raw_message.metadata.num_delivered
        event_id = str(body.get("id"))
        bound = log.bind(event_id=event_id, webhook_event=payload["event"], attempt=attempt)
        try:
            response = await sender.send(str(config.url), payload, event_id)
            ok = response.is_success
            status: int | str = response.status_code
        except httpx.HTTPError as exc:
            ok, status = False, type(exc).__name__
        if ok:
            bound.info("webhook.delivered", status=status)
            await msg.ack()
            return
        if attempt >= MAX_DELIVERIES:
            bound.error("webhook.given_up", status=status)
            await msg.raw_message.term()
            return
        delay = BACKOFF_SECONDS[min(attempt - 1, len(BACKOFF_SECONDS) - 1)]
        bound.warning("webhook.failed", status=status, retry_in=delay)
        await msg.raw_message.nak(delay=delay)
