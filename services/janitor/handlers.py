"""Room events → timers; the janitor's own commands (status)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import Tracking
from faststream.nats import NatsBroker
from pydantic import BaseModel

from contracts.events import EventEnvelope, aggregate_subjects
from services.janitor.scheduler import Scheduler
from services.janitor.timers import TimerStore
from services.runtime.commands import CommandRouter
from services.runtime.consumer import Consumed
from services.runtime.logging import get_logger

log = get_logger("meetplane.janitor")


class Status(BaseModel):
    """`meetplane.cmd.janitor.status` request."""


# What the janitor consumes: every room event (a date set, moved or cleared; a deletion).
CONSUMED_SUBJECTS = [aggregate_subjects("room")]


def timer_change(envelope: EventEnvelope) -> tuple[str, int | None] | None:
    """What a room event does to the room's timer: (room id, due ms or None to clear)."""
    data = envelope.data
    if envelope.type in ("RoomCreated", "RoomUpdated"):
        room = data["room"]
        date = room.get("autoDeletionDate")
        if date is None and envelope.type == "RoomCreated":
            return None  # a new room has no timer to clear
        return room["roomId"], None if date is None else int(date)
    if envelope.type == "RoomDeleted":
        return data["roomId"], None
    return None


class JanitorHandlers:
    """Keeps one timer per room with an auto-deletion date."""

    def __init__(self, store: TimerStore, scheduler: Scheduler, broker: NatsBroker) -> None:
        self.store = store
        self.scheduler = scheduler
        self.broker = broker

    async def process_events(self, batch: Sequence[Consumed], position: Tracking) -> bool:
        """The `janitor-events` consumer: a batch of timer changes and the position, at once.

        A batch without a timer change (rooms created without a date) writes
        nothing: the consumer records its position later.
        """
        changes = [c for c in (timer_change(item.envelope) for item in batch) if c is not None]
        if batch and not changes:
            return False
        await asyncio.to_thread(
            self.store.apply, changes, position.application_name, position.notification_id
        )
        if any(due is not None for _, due in changes):
            self.scheduler.poke()
        if changes:
            log.debug("janitor.timers", changed=len(changes), position=position.notification_id)
        return True

    async def status(self, _: Status) -> dict[str, Any]:
        return {
            "pendingTimers": await asyncio.to_thread(self.store.count),
            "nextDue": await asyncio.to_thread(self.store.next_due),
            "firedByThisReplica": self.scheduler.fired_total,
        }

    def register(self, router: CommandRouter) -> None:
        """Answer the janitor's commands on `router`."""
        router.register("status", Status, self.status)
