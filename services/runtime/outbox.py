"""The transactional outbox: publish integration events after commit, at least once.

The outbox follows the service's own notification log (so there is no dual
write: a request only saves events), maps each domain event to zero or more
integration events, publishes them to JetStream with `Nats-Msg-Id` = event id,
waits for the acks, then records the position in the service's tracking table.
A crash between publish and record re-publishes the batch with the same ids,
which JetStream drops as duplicates inside its window.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from eventsourcing.persistence import IntegrityError, Notification, Tracking
from faststream.nats import NatsBroker

from contracts.events import EventEnvelope
from services.runtime.follower import LogFollower
from services.runtime.leader import Lease
from services.runtime.logging import get_logger
from services.runtime.nats import publish_events
from services.runtime.store import ServiceApplication

log = get_logger("meetplane.outbox")

OUTBOX_NAMESPACE = uuid.UUID("6c1f0d7e-4f0b-4b39-9a43-4d2d1e6a0b11")

# Maps one stored domain event to the integration events it stands for.
Mapper = Callable[[Any], Sequence[EventEnvelope]]


def integration_event_id(originator_id: uuid.UUID, version: int, index: int = 0) -> uuid.UUID:
    """A stable id for the `index`-th integration event of a domain event.

    Stable across re-publication, so JetStream and consumers recognise replays.
    """
    return uuid.uuid5(OUTBOX_NAMESPACE, f"{originator_id}:{version}:{index}")


class Outbox:
    """Publishes a service's integration events from its notification log."""

    def __init__(
        self,
        app: ServiceApplication,
        broker: NatsBroker,
        mapper: Mapper,
        *,
        stream: str = "MEETPLANE",
        publish_timeout: float = 10.0,
        hold_file: Path | None = None,
        lease: Lease | None = None,
    ) -> None:
        self.app = app
        self.broker = broker
        self.mapper = mapper
        self.stream = stream
        self.publish_timeout = publish_timeout
        self.hold_file = hold_file
        self.tracking_name = f"{app.name}.outbox"
        self.published = 0
        self.follower = LogFollower(
            self.tracking_name,
            app.process_recorder,
            self.position,
            self._publish_batch,
            lease=lease,
        )
        app.add_commit_listener(self.follower.poke)

    def position(self) -> int | None:
        """The last notification id whose events are on the stream."""
        return self.app.process_recorder.max_tracking_id(self.tracking_name)

    async def run(self) -> None:
        """Follow the log until cancelled."""
        await self.follower.run()

    async def _publish_batch(self, notifications: Sequence[Notification]) -> None:
        while self.hold_file is not None and self.hold_file.exists():  # noqa: ASYNC110 - test hook
            await asyncio.sleep(0.05)
        envelopes: list[EventEnvelope] = []
        for notification in notifications:
            domain_event = self.app.mapper.to_domain_event(notification)
            envelopes.extend(await asyncio.to_thread(self.mapper, domain_event))
        acks = await publish_events(self.broker, envelopes, self.stream, self.publish_timeout)
        for envelope, ack in zip(envelopes, acks, strict=True):
            log.info(
                "outbox.published",
                event_id=str(envelope.id),
                event_type=envelope.type,
                subject_id=envelope.subject_id,
                duplicate=bool(getattr(ack, "duplicate", False)),
            )
        last = notifications[-1].id
        try:
            await asyncio.to_thread(
                self.app.process_recorder.insert_tracking, Tracking(self.tracking_name, last)
            )
        except IntegrityError:
            # Another replica recorded the same position first; its publish and
            # ours carried the same Nats-Msg-Id, so the stream holds one copy.
            log.info("outbox.position_taken", position=last)
        self.published += len(envelopes)
