"""Durable, idempotent JetStream consumers.

How a replay is recognised, in one place: every message is tracked by
(`consumer name`, JetStream stream sequence) in the consumer's own store.  A
handler that writes events records the tracking in the same transaction
(`ServiceApplication.save_tracked`), so an effect and its "processed" mark
commit together; a redelivered message whose sequence is already tracked is
acked and skipped.

Tracking positions are a high-water mark (eventsourcing's tracking tables), so
a consumer must never finish message n+1 before message n.  Hence each durable
consumer has at most one unacknowledged message (`max_ack_pending=1`, shared by
all replicas), and a failing handler is retried in place, with backoff and the
ack deadline extended, instead of being nak'ed past.  A poison message thus
stops its consumer loudly rather than being skipped silently.  The ack wait is
short and a heartbeat (`in_progress`) covers a live handler, so a message held by
a replica that died is redelivered to another within seconds.

Integration event ids are stable, so a re-publication outside JetStream's
duplicate window is caught by the handlers' own guards (ending an ended
meeting, deleting a deleted room change nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from eventsourcing.persistence import Tracking
from faststream import AckPolicy
from faststream.nats import JStream, NatsBroker, NatsMessage, PullSub
from nats.js.api import AckPolicy as JsAckPolicy
from nats.js.api import ConsumerConfig, DeliverPolicy
from pydantic import ValidationError

from contracts.events import EventEnvelope
from contracts.streams import CONSUMER_ACK_WAIT_SECONDS, CONSUMER_HEARTBEAT_SECONDS
from services.runtime.logging import get_logger

log = get_logger("meetplane.consumer")


class ProcessedLog(Protocol):
    """Where a consumer records what it processed (its own store)."""

    def has_processed(self, tracking: Tracking) -> bool:
        """Whether exactly this message was processed."""
        ...

    def record_processed(self, tracking: Tracking) -> None:
        """Mark a message processed (no-op if it is already)."""
        ...


@dataclass(frozen=True)
class Consumed:
    """A consumed integration event with its tracking position."""

    envelope: EventEnvelope
    tracking: Tracking


Handler = Callable[[Consumed], Awaitable[None]]


def durable_consumer(
    broker: NatsBroker,
    *,
    name: str,
    subject: str,
    handler: Handler,
    processed: ProcessedLog,
    stream: str = "MEETPLANE",
    max_retry_delay: float = 10.0,
) -> None:
    """Register a durable pull consumer `name` on `subject` that calls `handler` once per event.

    Replicas of a service share the durable name, so JetStream hands each
    message to one of them, one at a time.  A handler exception is retried with
    backoff (up to `max_retry_delay` between tries) until it succeeds; an
    envelope that does not validate is terminated (it will never become valid).
    """

    @broker.subscriber(
        subject,
        stream=JStream(stream, declare=False),
        durable=name,
        config=ConsumerConfig(
            durable_name=name,
            ack_policy=JsAckPolicy.EXPLICIT,
            ack_wait=CONSUMER_ACK_WAIT_SECONDS,
            deliver_policy=DeliverPolicy.ALL,
            max_ack_pending=1,
        ),
        pull_sub=PullSub(batch_size=1, timeout=1.0),
        ack_policy=AckPolicy.MANUAL,
        title=name,
    )
    async def _on_message(body: Any, msg: NatsMessage) -> None:
        meta = msg.raw_message.metadata
        tracking = Tracking(name, meta.sequence.stream)
        try:
            envelope = EventEnvelope.model_validate(body)
        except ValidationError as exc:
            log.error(
                "consumer.invalid_event",
                consumer=name,
                seq=tracking.notification_id,
                errors=exc.errors(include_url=False),
            )
            await msg.raw_message.term()
            return
        bound = log.bind(
            consumer=name,
            event_id=str(envelope.id),
            event_type=envelope.type,
            subject_id=envelope.subject_id,
        )
        heartbeat = asyncio.create_task(_keep_alive(msg))
        try:
            await _handle_until_done(
                processed, handler, Consumed(envelope, tracking), bound, max_retry_delay
            )
        finally:
            heartbeat.cancel()
        await msg.ack()


async def _keep_alive(msg: NatsMessage) -> None:
    """Tell JetStream the message is being worked on, so it is not redelivered meanwhile."""
    while True:
        await asyncio.sleep(CONSUMER_HEARTBEAT_SECONDS)
        with contextlib.suppress(Exception):
            await msg.raw_message.in_progress()


async def _handle_until_done(
    processed: ProcessedLog,
    handler: Handler,
    consumed: Consumed,
    bound: Any,
    max_retry_delay: float,
) -> None:
    """Run the handler (unless already processed), retrying in place until it succeeds."""
    tracking = consumed.tracking
    delay = 0.1
    while True:
        try:
            if await asyncio.to_thread(processed.has_processed, tracking):
                bound.info("consumer.replay_skipped", seq=tracking.notification_id)
            else:
                await handler(consumed)
                await asyncio.to_thread(processed.record_processed, tracking)
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            bound.exception("consumer.handler_failed", retry_in=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_retry_delay)
