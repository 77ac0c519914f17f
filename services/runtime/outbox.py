"""The transactional outbox: publish integration events after commit, at least once.

The outbox follows the service's own notification log (so there is no dual
write: a request only saves events).  For each batch it maps the domain events,
with the state of their aggregate right after each (advanced in memory, see
`tracker.py`), to integration events, in one pass on its own thread; publishes
them to JetStream pipelined with `Nats-Msg-Id` = event id; waits for the acks;
then the follower records the position, once for a run of batches when the
log goes quiet (`follower.py`).  A crash between publish and record
re-publishes those batches with the same ids, which JetStream drops as
duplicates inside its window.

`wait_published(position)` is the write side of read-your-writes: a command
replies only once the events it committed are on the stream, so whatever the
caller does next can be ordered after them (see `DurableConsumer.caught_up`).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
import weakref
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from eventsourcing.persistence import Notification
from faststream.nats import NatsBroker
from prometheus_client import REGISTRY, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from contracts.events import EventEnvelope, subject_of
from services.runtime.follower import LogFollower, TrackingPosition
from services.runtime.leader import Lease
from services.runtime.logging import get_logger
from services.runtime.nats import publish_events
from services.runtime.store import ServiceApplication
from services.runtime.telemetry import publish_spans, traceparent_context, tracing_enabled
from services.runtime.tracker import AggregateStates

log = get_logger("meetplane.outbox")

OUTBOX_NAMESPACE = uuid.UUID("6c1f0d7e-4f0b-4b39-9a43-4d2d1e6a0b11")

PUBLISHED = Counter(
    "meetplane_outbox_published_total",
    "Integration events the outbox published (duplicate: JetStream already had it)",
    ["service", "duplicate"],
)


class _OutboxLag(Collector):
    """`meetplane_outbox_lag`: notifications committed but not yet on the stream.

    Read from the store at scrape time (head of the notification log minus the
    recorded position), so it keeps growing while the outbox is stuck.
    """

    def __init__(self) -> None:
        self.outboxes: weakref.WeakSet[Outbox] = weakref.WeakSet()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        lag = GaugeMetricFamily(
            "meetplane_outbox_lag",
            "Notifications committed to the event store and not yet published",
            labels=["service"],
        )
        for outbox in list(self.outboxes):
            with contextlib.suppress(Exception):  # a store that is down: no sample
                lag.add_metric([outbox.app.name], outbox.lag())
        yield lag


OUTBOX_LAG = _OutboxLag()
REGISTRY.register(OUTBOX_LAG)

# Maps one stored domain event, with its aggregate right after it, to the integration
# events it stands for (often none: bookkeeping that stays inside the service).
Mapper = Callable[[Any, Any], Sequence[EventEnvelope]]


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
        kinds: tuple[type, ...] | None = None,
    ) -> None:
        """`kinds`: the aggregates `mapper` maps (default all); others are not decoded."""
        self.app = app
        self.broker = broker
        self.mapper = mapper
        self.stream = stream
        self.publish_timeout = publish_timeout
        self.hold_file = hold_file
        self.tracking = TrackingPosition(app.process_recorder, f"{app.name}.outbox")
        self.published = 0
        self.states = AggregateStates(app, kinds=kinds)
        self.follower = LogFollower(
            self.tracking.name,
            app.process_recorder,
            self.tracking.read,
            self._publish_batch,
            lease=lease,
            wants=self.states.concerns,
            record=self.tracking.write,
        )
        app.add_commit_listener(self.follower.offer)
        OUTBOX_LAG.outboxes.add(self)

    def lag(self) -> int:
        """How many notifications are committed but not published (reads the store)."""
        head = self.app.process_recorder.max_notification_id() or 0
        return max(0, head - (self.position() or 0))

    def position(self) -> int | None:
        """The last notification id whose events are on the stream."""
        return self.tracking.read()

    async def run(self) -> None:
        """Follow the log until cancelled."""
        try:
            await self.follower.run()
        finally:
            OUTBOX_LAG.outboxes.discard(self)  # a stopped outbox reports no lag

    async def wait_published(self, position: int, timeout: float = 10.0) -> bool:
        """Wait until everything up to notification `position` is on the stream."""
        return await self.follower.wait_until(position, timeout)

    def _map(self, notifications: Sequence[Notification]) -> list[EventEnvelope]:
        """The integration events of a batch, each with the trace context of its commit."""
        envelopes: list[EventEnvelope] = []
        try:
            for domain_event, state, traceparent in self.states.traced(notifications):
                for envelope in self.mapper(domain_event, state):
                    if traceparent is not None and envelope.traceparent is None:
                        envelope.traceparent = traceparent
                    envelopes.append(envelope)
        except Exception:
            self.states.forget()
            raise
        return envelopes

    @staticmethod
    def _causes(envelopes: list[EventEnvelope]) -> list[tuple[str, str, Any]]:
        """Each event's subject, id and the commit that stored it (for its publish span)."""
        if not tracing_enabled():
            return []  # no spans to parent
        return [
            (subject_of(e.type), str(e.id), traceparent_context(e.traceparent)) for e in envelopes
        ]

    async def _publish_batch(self, _start: int, notifications: Sequence[Notification]) -> bool:
        while self.hold_file is not None and self.hold_file.exists():  # noqa: ASYNC110 - test hook
            await asyncio.sleep(0.05)
        if not self.states.concerns(notifications):
            return False  # bookkeeping only: the follower records the position later
        envelopes = await self.follower.run_sync(self._map, notifications)
        if not envelopes:
            return False
        try:
            with publish_spans(self._causes(envelopes)) as headers:
                acks = await publish_events(
                    self.broker, envelopes, self.stream, self.publish_timeout, headers=headers
                )
        except BaseException:
            self.states.forget()  # the batch is read again from the store
            raise
        duplicates = sum(1 for ack in acks if getattr(ack, "duplicate", False))
        last = notifications[-1].id
        self.published += len(envelopes)
        if envelopes:
            PUBLISHED.labels(self.app.name, "false").inc(len(envelopes) - duplicates)
            if duplicates:
                PUBLISHED.labels(self.app.name, "true").inc(duplicates)
        log.debug(
            "outbox.published",
            count=len(envelopes),
            duplicates=duplicates,
            position=last,
            event_ids=[str(e.id) for e in envelopes[:20]],
        )
        # The follower records the position once the log is quiet (or the skip is old):
        # one write for a run of publishes, not one per commit.  A crash before it
        # re-publishes those events with the same ids: JetStream drops them.
        return False
