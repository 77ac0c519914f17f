"""Durable, idempotent JetStream consumers.

How a replay is recognised, in one place: every message is tracked by
(`consumer name`, JetStream stream sequence) in the consumer's own store.  A
handler that writes events records the tracking in the same transaction
(`ServiceApplication.save_tracked`), so an effect and its "processed" mark
commit together; a redelivered message whose sequence is already tracked is
acked and skipped.  Integration event ids are stable, so a re-publication
outside JetStream's duplicate window is caught by the handlers' own guards
(every command they issue is idempotent by state: ending an ended meeting,
deleting a deleted room change nothing).
"""

from __future__ import annotations

import asyncio
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
from contracts.streams import CONSUMER_ACK_WAIT_SECONDS
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
    retry_delay: float = 1.0,
) -> None:
    """Register a durable pull consumer `name` on `subject` that calls `handler` once per event.

    Replicas of a service share the durable name, so JetStream hands each
    message to one of them.  A handler exception naks the message for redelivery
    after `retry_delay`; an envelope that does not validate is terminated (it
    will never become valid) and logged.
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
            max_ack_pending=1000,
        ),
        pull_sub=PullSub(batch_size=32, timeout=1.0),
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
        try:
            if await asyncio.to_thread(processed.has_processed, tracking):
                bound.info("consumer.replay_skipped", seq=tracking.notification_id)
                await msg.ack()
                return
            await handler(Consumed(envelope, tracking))
            await asyncio.to_thread(processed.record_processed, tracking)
        except Exception:
            bound.exception("consumer.handler_failed", retry_in=retry_delay)
            await msg.raw_message.nak(delay=retry_delay)
            return
        await msg.ack()
