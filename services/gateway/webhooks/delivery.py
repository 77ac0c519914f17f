"""Webhook delivery: one durable JetStream consumer per subscriber, retries, a delivery log.

Each subscriber (the v3.8.0 global webhook and every 3.9 webhook resource) has
its own durable pull consumer on the MEETPLANE stream, shared by all gateway
replicas: a subscriber that is down only delays its own deliveries.  A failed
attempt is nak'ed with a growing delay, so JetStream redelivers it (at least
once, up to `max_attempts`); every attempt lands in the delivery log, from
which an admin can read what happened and send a delivery again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from prometheus_client import Counter, Histogram

from contracts.events import subject_of
from services.gateway.webhooks import wire
from services.gateway.webhooks.payloads import PayloadBuilder, room_of, webhook_event
from services.gateway.webhooks.ssrf import (
    FORBIDDEN_REASON,
    AddressPolicy,
    ForbiddenAddress,
    Resolver,
    guarded_client,
    system_resolve,
)
from services.gateway.webhooks.store import GLOBAL, Attempt, Delivery, WebhookStore
from services.runtime.logging import get_logger
from services.runtime.pull import PullBroken, PullStream
from services.runtime.telemetry import (
    TRACEPARENT,
    consume_spans,
    tracing_enabled,
    with_traceparent,
)

log = get_logger("meetplane.webhooks")

DELIVERIES = Counter(
    "meetplane_webhook_deliveries_total",
    "Webhook delivery attempts by outcome (delivered, failed: retried later, given_up, resent_*)",
    ["outcome"],
)
ATTEMPTS = Histogram(
    "meetplane_webhook_delivery_attempts",
    "Attempts a delivery took when it ended (delivered or given up)",
    buckets=(1, 2, 3, 5, 10, 20),
)

BACKOFF_SECONDS = (1, 2, 5, 10, 30, 60, 120, 300, 600)
# Only the event types that become webhooks: a participant's join or leave is never
# delivered to the gateway (before, each join cost it a delivery and an ack for nothing).
SUBJECTS = sorted({subject_of(event_type) for event_type in wire.WEBHOOK_EVENTS})
TIMEOUT_SECONDS = 5.0  # OpenVidu Meet gives a receiver 5 s
BATCH = 10  # deliveries requested ahead (each is acked or nak'ed on its own)
PULL_WAIT_SECONDS = 1.0  # a waiting take returns empty after this (to notice stopping)


def consumer_name(subscriber: str) -> str:
    """The durable consumer of a subscriber."""
    return f"webhook-{subscriber}"


def _trace_headers(message: Msg) -> Mapping[str, str] | None:
    """A message's trace context: its headers', else its envelope's `traceparent` (durable)."""
    if not tracing_enabled() or (message.headers and TRACEPARENT in message.headers):
        return message.headers
    try:
        traceparent = json.loads(message.data).get("traceparent")
    except (ValueError, AttributeError):
        return message.headers
    return with_traceparent(message.headers, traceparent if isinstance(traceparent, str) else None)


def _causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _reason(exc: Exception) -> str:
    # The reasons OpenVidu Meet gives for an unreachable URL.
    if isinstance(exc, httpx.TimeoutException):
        return f"Request timed out after {TIMEOUT_SECONDS:g} seconds"
    causes = _causes(exc)
    if any(isinstance(c, ForbiddenAddress) for c in causes):
        return FORBIDDEN_REASON  # the same for every port: no scanning through webhooks
    if any(isinstance(c, socket.gaierror) for c in causes):
        return "Domain name could not be resolved"
    if any(isinstance(c, ConnectionRefusedError) for c in causes):
        return "Connection refused by server"
    if any(isinstance(c, ConnectionResetError) for c in causes):
        return "Connection reset by server"
    if any(isinstance(c, ssl.SSLError) for c in causes):
        return "SSL/TLS certificate error"
    if isinstance(exc, httpx.NetworkError):
        return f"Network error: {exc}"
    return f"Connection failed: {exc}"


def status_reason(response: httpx.Response) -> str:
    """Why a non-2xx answer is a failure, in OpenVidu Meet's words."""
    phrase = f"{response.status_code} {response.reason_phrase}".strip()
    if response.status_code >= 500:
        return f"Server error ({phrase})"
    if response.status_code >= 400:
        return f"Client error ({phrase})"
    return f"Unexpected response ({response.status_code})"


class Sender:
    """Posts webhook bodies, signed with the API key at the moment of sending.

    Only to public addresses (or `policy`'s allowed networks), checked when
    connecting (`services.gateway.webhooks.ssrf`); redirects are not followed.
    """

    def __init__(
        self,
        secret: str,
        policy: AddressPolicy | None = None,
        timeout: float = TIMEOUT_SECONDS,
        resolve: Resolver = system_resolve,
    ) -> None:
        self.secret = secret
        self.policy = policy or AddressPolicy()
        self.resolve = resolve
        self.client = guarded_client(self.policy, timeout, resolve)

    async def forbidden(self, url: str) -> bool:
        """Whether `url`'s host is (or resolves to) an address webhooks may not reach.

        A name that does not resolve now is not refused here: delivery says so later.
        """
        parsed = httpx.URL(url)
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            await self.policy.check(parsed.host, port, self.resolve)
        except ForbiddenAddress:
            return True
        except OSError:
            return False
        return False

    async def post(self, url: str, payload: dict[str, Any], event_id: str | None) -> Attempt:
        """One attempt; never raises for the receiver's faults."""
        body = wire.stringify(payload).encode()
        now = int(time.time() * 1000)
        try:
            response = await self.client.post(
                url, content=body, headers=wire.headers(self.secret, now, body, event_id)
            )
        except httpx.HTTPError as exc:
            return Attempt(date=now, error=_reason(exc))
        if response.is_success:
            return Attempt(date=now, statusCode=response.status_code)
        return Attempt(date=now, statusCode=response.status_code, error=status_reason(response))

    async def close(self) -> None:
        """Close the HTTP client."""
        await self.client.aclose()


def test_payload() -> dict[str, Any]:
    """OpenVidu Meet's test event."""
    return {
        "event": wire.TEST_EVENT,
        "creationDate": int(time.time() * 1000),
        "data": {"message": "This is a test webhook event"},
    }


Target = Callable[[str, str, str | None], Awaitable[str | None]]


class Dispatcher:
    """Runs the subscribers' consumers in this gateway replica."""

    def __init__(
        self,
        connection: Client,
        store: WebhookStore,
        builder: PayloadBuilder,
        sender: Sender,
        stream: str,
        max_attempts: int = 10,
    ) -> None:
        self.connection = connection
        self.js = connection.jetstream()
        self.store = store
        self.builder = builder
        self.sender = sender
        self.stream = stream
        self.max_attempts = max_attempts
        self._loops: dict[str, asyncio.Task[None]] = {}
        self._watcher: asyncio.Task[None] | None = None
        self._stopping = False

    # ---- consumers -----------------------------------------------------------------------

    async def ensure_consumer(self, subscriber: str) -> None:
        """Create the subscriber's consumer (new events from now on) and run it here."""
        config = ConsumerConfig(
            durable_name=consumer_name(subscriber),
            filter_subjects=SUBJECTS,
            deliver_policy=DeliverPolicy.NEW,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=60,
            max_deliver=-1,
            max_ack_pending=100,
        )
        await self.js.add_consumer(self.stream, config)
        self._run(subscriber)

    async def drop_consumer(self, subscriber: str) -> None:
        """Stop and delete a subscriber's consumer (its webhook was deleted)."""
        task = self._loops.pop(subscriber, None)
        if task is not None:
            task.cancel()
        with contextlib.suppress(NotFoundError):
            await self.js.delete_consumer(self.stream, consumer_name(subscriber))

    def _run(self, subscriber: str) -> None:
        if subscriber not in self._loops and not self._stopping:
            self._loops[subscriber] = asyncio.create_task(self._loop(subscriber))

    async def start(self) -> None:
        """The global webhook's consumer, and every registered webhook's."""
        await self.ensure_consumer(GLOBAL)
        for webhook in await self.store.webhooks():
            self._run(webhook.webhookId)
        self._watcher = asyncio.create_task(self._watch())

    async def stop(self) -> None:
        """Stop every loop of this replica (consumers stay for the other replicas)."""
        self._stopping = True
        tasks = [*self._loops.values(), *([self._watcher] if self._watcher else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._loops.clear()

    async def _watch(self) -> None:
        # Webhooks created or deleted through another replica.
        while not self._stopping:
            try:
                current = {w.webhookId for w in await self.store.webhooks()}
                for subscriber in current - set(self._loops):
                    self._run(subscriber)
                for subscriber in set(self._loops) - current - {GLOBAL}:
                    self._loops.pop(subscriber).cancel()
            except Exception:
                log.exception("webhook.watch_failed")
            await asyncio.sleep(2.0)

    async def _loop(self, subscriber: str) -> None:
        # A continuous pull (one open request, topped up), not `fetch()`: a fetch sent
        # two pull requests per event at one event at a time, and one every second idle.
        while not self._stopping:
            pull = PullStream(
                self.connection, self.stream, consumer_name(subscriber), BATCH, check_gaps=False
            )
            try:
                await self.js.consumer_info(self.stream, consumer_name(subscriber))
                await pull.start()
                while not self._stopping:
                    for message in await pull.take(BATCH, timeout=PULL_WAIT_SECONDS):
                        await self.handle(subscriber, message)
            except asyncio.CancelledError:
                raise
            except PullBroken as exc:  # a reconnect, the consumer deleted or moved: reopen
                log.info("webhook.pull_reopened", subscriber=subscriber, reason=str(exc))
            except Exception as exc:
                if isinstance(exc, NotFoundError) and subscriber != GLOBAL:
                    return  # the webhook was deleted
                log.warning("webhook.consumer_failed", subscriber=subscriber, error=repr(exc))
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(Exception):
                    await pull.close()

    # ---- one delivery --------------------------------------------------------------------

    async def target(self, subscriber: str, event: str, room_id: str | None) -> str | None:
        """The URL an event goes to for this subscriber, or None if it is not wanted."""
        if subscriber == GLOBAL:
            if event not in wire.V380_EVENTS:
                return None
            config = await self.store.global_config()
            return config.url if config.enabled and config.url else None
        webhook = await self.store.webhook(subscriber)
        return webhook.url if webhook is not None and webhook.wants(event, room_id) else None

    async def handle(self, subscriber: str, message: Msg) -> None:
        """Deliver one event to one subscriber: ack, or nak for a later retry, or give up."""
        attributes = {"messaging.destination.name": message.subject}
        with consume_spans(consumer_name(subscriber), [(_trace_headers(message), attributes)]):
            await self._handle(subscriber, message)

    async def _handle(self, subscriber: str, message: Msg) -> None:
        try:
            envelope = json.loads(message.data)
        except ValueError:
            await message.ack()
            return
        event = webhook_event(envelope)
        url = await self.target(subscriber, event, room_of(envelope)) if event else None
        if url is None:
            await message.ack()
            return
        delivery_id = str(envelope.get("id"))
        record = await self.store.delivery(subscriber, delivery_id)
        if record is not None and record.status == "delivered":
            await message.ack()  # a redelivery of what already arrived
            return
        attempt_number = message.metadata.num_delivered or 1
        bound = log.bind(subscriber=subscriber, event_id=delivery_id, webhook_event=event)
        try:
            payload = await self.builder.payload(envelope)
        except Exception as exc:
            # The room could not be described (its service is down): like a failed attempt.
            if attempt_number >= self.max_attempts:
                bound.error("webhook.payload_given_up", error=repr(exc))
                DELIVERIES.labels("given_up").inc()
                ATTEMPTS.observe(attempt_number)
                await message.term()
                return
            bound.warning("webhook.payload_failed", error=repr(exc), attempt=attempt_number)
            DELIVERIES.labels("failed").inc()
            await message.nak(delay=self._backoff(attempt_number))
            return
        if payload is None:
            await message.ack()
            return
        record = record or Delivery(
            deliveryId=delivery_id,
            webhookId=subscriber,
            event=str(payload["event"]),
            creationDate=int(payload["creationDate"]),
            payload=payload,
        )
        attempt = await self.sender.post(url, payload, delivery_id)
        ok = attempt.error is None
        final = not ok and attempt_number >= self.max_attempts
        record.record(attempt, ok, final)
        await self.store.put_delivery(record)
        DELIVERIES.labels("delivered" if ok else "given_up" if final else "failed").inc()
        if ok or final:
            ATTEMPTS.observe(attempt_number)
        if ok:
            bound.info("webhook.delivered", status=attempt.statusCode, attempt=attempt_number)
            await message.ack()
        elif final:
            bound.error("webhook.given_up", error=attempt.error, attempt=attempt_number)
            await message.term()
        else:
            delay = self._backoff(attempt_number)
            bound.warning(
                "webhook.failed", error=attempt.error, attempt=attempt_number, retry_in=delay
            )
            await message.nak(delay=delay)

    @staticmethod
    def _backoff(attempt: int) -> float:
        return float(BACKOFF_SECONDS[min(attempt - 1, len(BACKOFF_SECONDS) - 1)])

    async def resend(self, subscriber: str, delivery_id: str, url: str) -> Delivery | None:
        """Send a logged delivery again now (an admin's request); None if not logged."""
        record = await self.store.delivery(subscriber, delivery_id)
        if record is None:
            return None
        attempt = await self.sender.post(url, record.payload, delivery_id)
        attempt.resend = True
        record.record(attempt, attempt.error is None)
        DELIVERIES.labels("resent_ok" if attempt.error is None else "resent_failed").inc()
        await self.store.put_delivery(record)
        log.info(
            "webhook.resent", subscriber=subscriber, event_id=delivery_id, ok=attempt.error is None
        )
        return record
