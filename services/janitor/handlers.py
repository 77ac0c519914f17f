"""Room events → timers; the janitor's own commands (status)."""

from __future__ import annotations

import asyncio
from typing import Any

from faststream.nats import NatsBroker
from pydantic import BaseModel

from contracts.commands import ErrorCode
from contracts.events import aggregate_subjects
from services.janitor.scheduler import Scheduler
from services.janitor.timers import TimerStore
from services.runtime.commands import CommandRouter
from services.runtime.consumer import Consumed, durable_consumer
from services.runtime.logging import get_logger

log = get_logger("meetplane.janitor")


class Status(BaseModel):
    """`meetplane.cmd.janitor.status` request."""


class JanitorHandlers:
    """Keeps one timer per room with an auto-deletion date."""

    def __init__(self, store: TimerStore, scheduler: Scheduler, broker: NatsBroker) -> None:
        self.store = store
        self.scheduler = scheduler
        self.broker = broker

    async def on_room_event(self, consumed: Consumed) -> None:
        envelope, data = consumed.envelope, consumed.envelope.data
        if envelope.type in ("RoomCreated", "RoomUpdated"):
            room = data["room"]
            date = room.get("autoDeletionDate")
            if date is None:
                await asyncio.to_thread(self.store.clear, room["roomId"])
            else:
                await asyncio.to_thread(self.store.set, room["roomId"], int(date))
                self.scheduler.poke()
            log.info(
                "janitor.timer", room_id=room["roomId"], due_ms=date, event_id=str(envelope.id)
            )
        elif envelope.type == "RoomDeleted":
            await asyncio.to_thread(self.store.clear, data["roomId"])

    async def status(self, _: Status) -> dict[str, Any]:
        return {
            "pendingTimers": await asyncio.to_thread(self.store.count),
            "nextDue": await asyncio.to_thread(self.store.next_due),
            "firedByThisReplica": self.scheduler.fired_total,
        }

    def register(self) -> None:
        router = CommandRouter(self.broker, "janitor", {ValueError: ErrorCode.INVALID})
        router.register("status", Status, self.status)
        durable_consumer(
            self.broker,
            name="janitor-room-events",
            subject=aggregate_subjects("room"),
            handler=self.on_room_event,
            processed=self.store,
        )
