"""The firing loop: claim due timers in pages, publish RoomAutoDeletionDue, drop them.

Firing is at least once: a timer row is removed only after JetStream acked
its event, and the event id is derived from (room, date), so a second firing
(after a crash, or by a replica whose lease expired) is dropped by JetStream's
duplicate window, and the rooms service ignores a firing for a date it no
longer has.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
import weakref
from collections.abc import Iterator

from faststream.nats import NatsBroker
from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from contracts.events import EventEnvelope, RoomAutoDeletionDue, make_envelope
from services.janitor.timers import Timer, TimerStore
from services.runtime.clock import Clock
from services.runtime.logging import get_logger
from services.runtime.nats import publish_events

FIRED = Counter(
    "meetplane_janitor_timers_fired_total",
    "RoomAutoDeletionDue events published (duplicate: that timer had fired already)",
    ["duplicate"],
)
LATENESS = Histogram(
    "meetplane_janitor_firing_lateness_seconds",
    "How late a timer fired after its due time",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


class _PendingTimers(Collector):
    """`meetplane_janitor_timers_pending`: timers set and not fired yet (read at scrape)."""

    def __init__(self) -> None:
        self.stores: weakref.WeakSet[TimerStore] = weakref.WeakSet()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("meetplane_janitor_timers_pending", "Timers not fired yet")
        counts = []
        for store in list(self.stores):
            with contextlib.suppress(Exception):  # a database that is down: no sample
                counts.append(store.count())
        if counts:
            family.add_metric([], max(counts))
        yield family


PENDING = _PendingTimers()
REGISTRY.register(PENDING)

log = get_logger("meetplane.janitor")
FIRING_NAMESPACE = uuid.UUID("2a7f1c3e-5d6b-4e8f-9a0b-1c2d3e4f5a6b")


def _by_due(timers: list[Timer]) -> list[tuple[int, list[Timer]]]:
    groups: dict[int, list[Timer]] = {}
    for timer in timers:
        groups.setdefault(timer.due_ms, []).append(timer)
    return sorted(groups.items())


def firing_id(room_id: str, due_ms: int) -> uuid.UUID:
    """The stable event id of one timer firing."""
    return uuid.uuid5(FIRING_NAMESPACE, f"{room_id}:{due_ms}")


class Scheduler:
    """Fires due timers promptly; sleeps until the next one (or a wake-up)."""

    def __init__(
        self,
        store: TimerStore,
        broker: NatsBroker,
        clock: Clock,
        *,
        stream: str = "MEETPLANE",
        batch: int = 10_000,
        lease_ms: int = 30_000,
        poll_seconds: float = 0.5,
        lookahead_ms: int = 1000,
    ) -> None:
        self.store = store
        PENDING.stores.add(store)
        self.broker = broker
        self.clock = clock
        self.stream = stream
        self.batch = batch
        self.lease_ms = lease_ms
        self.poll_seconds = poll_seconds
        self.lookahead_ms = lookahead_ms
        self.fired_total = 0
        self._wake = asyncio.Event()
        self._stopping = False

    def poke(self) -> None:
        """A nearer timer may exist now (called from the event loop)."""
        self._wake.set()

    def stop(self) -> None:
        """Finish the current page and return."""
        self._stopping = True
        self._wake.set()

    async def fire_due(self) -> int:
        """Fire everything due within the lookahead, each at its due time; returns the count.

        Timers due in the next `lookahead_ms` are claimed (leased) and their events
        built ahead of time, so a burst is published at its due instant instead of
        after a claim and serialisation pass; nothing is ever published early.
        """
        fired = 0
        while not self._stopping:
            horizon = self.clock.now_ms() + self.lookahead_ms
            claimed = await asyncio.to_thread(
                self.store.claim_due, horizon, self.batch, self.lease_ms
            )
            if not claimed:
                break
            log.info(
                "janitor.claimed",
                count=len(claimed),
                first_due=claimed[0].due_ms,
                ahead_ms=claimed[0].due_ms - self.clock.now_ms(),
            )
            for due, group in _by_due(claimed):
                envelopes = [self._envelope(t) for t in group]
                wait_ms = due - self.clock.now_ms()
                if wait_ms > 0:
                    await asyncio.sleep(wait_ms / 1000)
                acks = await publish_events(self.broker, envelopes, self.stream)
                late_ms = self.clock.now_ms() - due
                duplicates = sum(1 for ack in acks if getattr(ack, "duplicate", False))
                FIRED.labels("false").inc(len(group) - duplicates)
                if duplicates:
                    # The same (room, date) fired before: another replica, or a crash
                    # between publishing and deleting the timer.
                    FIRED.labels("true").inc(duplicates)
                LATENESS.observe(max(late_ms, 0) / 1000)
                log.info("janitor.published", count=len(group), late_ms=late_ms)
            await asyncio.to_thread(self.store.fired, claimed)
            fired += len(claimed)
            log.info("janitor.fired", count=len(claimed))
        self.fired_total += fired
        return fired

    @staticmethod
    def _envelope(timer: Timer) -> EventEnvelope:
        return make_envelope(
            firing_id(timer.room_id, timer.due_ms),
            RoomAutoDeletionDue(roomId=timer.room_id, autoDeletionDate=timer.due_ms),
            source="janitor",
            subject_id=timer.room_id,
        )

    async def run(self) -> None:
        """Loop until stopped; errors are logged and retried."""
        try:
            await self._run()
        finally:
            PENDING.stores.discard(self.store)  # a stopped scheduler reports nothing

    async def _run(self) -> None:
        while not self._stopping:
            try:
                # One cheap read per poll; claiming (two writes) only when a timer is due.
                next_due = await asyncio.to_thread(self.store.next_due)
                if next_due is not None and next_due <= self.clock.now_ms() + self.lookahead_ms:
                    await self.fire_due()
                    next_due = await asyncio.to_thread(self.store.next_due)
            except Exception:
                log.exception("janitor.fire_failed")
                next_due = None
            # Poll at least every `poll_seconds`: another replica may add timers, and
            # a replaceable clock may jump; otherwise sleep until the next due time.
            delay = self.poll_seconds
            if next_due is not None:
                until_claim = next_due - self.lookahead_ms - self.clock.now_ms()
                delay = max(0.0, min(delay, until_claim / 1000))
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
