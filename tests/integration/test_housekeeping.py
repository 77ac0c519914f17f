"""Janitor housekeeping as commands to the owning services, on real NATS and S3."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

from faststream.nats import NatsBroker

from contracts.commands import rooms as rooms_cmd
from contracts.rooms import CreateRoomRequest
from services.janitor.housekeeping import Housekeeping
from services.janitor.settings import JanitorSettings
from services.janitor.timers import TimerStore
from services.meetings.main import build as build_meetings
from services.meetings.settings import MeetingsSettings
from services.recordings.main import build as build_recordings
from services.recordings.settings import RecordingsSettings
from services.recordings.storage import ObjectStorage, StorageSettings
from services.rooms.main import build as build_rooms
from services.rooms.settings import RoomsSettings
from services.runtime.clock import ManualClock
from services.runtime.rpc import request
from services.runtime.store import view_engine
from tests.support.services import running, wait_for


async def test_sweeps_end_idle_meetings_and_remove_orphans_once_per_period(
    settings_factory: Any, storage_settings: StorageSettings, client_broker: NatsBroker
) -> None:
    clock = ManualClock(start_ms=1_900_000_000_000)
    storage = ObjectStorage(storage_settings)
    async with AsyncExitStack() as stack:
        for build, cls, extra in (
            (build_rooms, RoomsSettings, {}),
            (build_meetings, MeetingsSettings, {"clock": clock}),
            (build_recordings, RecordingsSettings, {"storage": storage}),
        ):
            settings = settings_factory(cls)
            await stack.enter_async_context(running(build(settings, **extra), settings))
        room = (
            await request(
                client_broker, "rooms", "create", rooms_cmd.CreateRoom(request=CreateRoomRequest())
            )
        ).result

        async def joined() -> bool:
            reply = await request(
                client_broker,
                "meetings",
                "join",
                {
                    "roomId": room["roomId"],
                    "secret": room["anonymous"]["moderator"]["secret"],
                    "participantName": "Alice",
                },
            )
            return reply.ok

        await wait_for(joined)
        assert (
            await request(
                client_broker, "meetings", "leave", {"roomId": room["roomId"], "identity": "alice"}
            )
        ).ok
        storage.put_stream("recordings/ghost/ghost--1.mp4", [b"orphan"], "video/mp4")

        janitor = settings_factory(JanitorSettings)
        store = TimerStore(view_engine(janitor, "janitor"))
        replicas = [
            Housekeeping(
                store,
                client_broker,
                clock,
                empty_timeout_s=300,
                interval_s=60,
                orphan_interval_s=3600,
                orphan_min_age_s=0,
            )
            for _ in range(2)
        ]
        clock.advance(301_000)
        first = await replicas[0].sweep_once()
        second = await replicas[1].sweep_once()  # same period: the other replica holds the leases
        store.engine.dispose()

    assert len(first["end_empty"]["ended"]) == 1  # type: ignore[index]
    assert first["sweep_orphans"]["objectsWithoutRecord"] == ["recordings/ghost/ghost--1.mp4"]  # type: ignore[index]
    assert second == {}
    assert storage.stat("recordings/ghost/ghost--1.mp4") is None
