"""Recordings defects found in review, each proven on a restart or with a crashed start:
egress stop after a restart, stuck recordings, the orphan sweep's minimum age."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
from aiohttp import web

from contracts.commands.recordings import SweepOrphans
from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings
from services.meetings.main import build as build_meetings
from services.meetings.settings import MeetingsSettings
from services.recordings.main import build as build_recordings
from services.recordings.settings import RecordingsSettings
from services.recordings.storage import ObjectStorage, StorageSettings
from services.rooms.main import build as build_rooms
from services.rooms.settings import RoomsSettings
from services.runtime.rpc import request
from tests.integration.test_livekit_backend import KEY as LK_KEY
from tests.integration.test_livekit_backend import SECRET as LK_SECRET
from tests.integration.test_livekit_backend import FakeLiveKit
from tests.support.http import serve_app
from tests.support.infra import free_port
from tests.support.recording_platform import KEY, platform, room_in_meeting
from tests.support.services import running, wait_for


@pytest.fixture
async def livekit() -> AsyncIterator[tuple[FakeLiveKit, str]]:
    fake = FakeLiveKit()
    app = web.Application()
    app.router.add_post("/twirp/{service}/{method}", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield fake, f"ws://127.0.0.1:{port}"
    await runner.cleanup()


async def start_recording(client: httpx.AsyncClient, room_id: str) -> dict[str, Any]:
    async def start() -> dict[str, Any] | None:
        response = await client.post("/api/v1/recordings", json={"roomId": room_id})
        return response.json() if response.status_code == 201 else None  # type: ignore[no-any-return]

    return await wait_for(start)  # type: ignore[no-any-return]


async def test_livekit_egress_is_stopped_after_a_restart(
    settings_factory: Any, storage_settings: StorageSettings, livekit: Any
) -> None:
    """The replica that stops a recording is not the one that started it."""
    fake, url = livekit
    lk = {
        "media_backend": "livekit",
        "livekit_url": url,
        "livekit_api_key": LK_KEY,
        "livekit_api_secret": LK_SECRET,
    }
    storage = ObjectStorage(storage_settings)
    async with AsyncExitStack() as stack:
        for build, cls in ((build_rooms, RoomsSettings), (build_meetings, MeetingsSettings)):
            settings = settings_factory(cls)
            await stack.enter_async_context(running(build(settings), settings))
        base = await stack.enter_async_context(
            serve_app(create_app(settings_factory(GatewaySettings, api_key=KEY)))
        )
        client = await stack.enter_async_context(
            httpx.AsyncClient(base_url=base, headers={"X-API-KEY": KEY}, timeout=30)
        )
        first = settings_factory(RecordingsSettings, **lk)
        async with running(build_recordings(first, storage=storage), first):
            room = await room_in_meeting(client)
            recording = await start_recording(client, room["roomId"])
        assert recording["status"] == "active"
        # A new process: nothing of the first one's memory survives.
        second = settings_factory(RecordingsSettings, **lk)
        async with running(build_recordings(second, storage=storage), second):
            stopped = await client.post(f"/api/v1/recordings/{recording['recordingId']}/stop")
            assert stopped.status_code == 202, stopped.text

            def stops() -> list[str]:
                return [
                    m.egress_id for method, m, _ in fake.received if method.endswith("StopEgress")
                ]

            assert await wait_for(stops, timeout=10) == ["EG_123"]


class HangingEgress:
    """The first start never returns: its replica 'crashed' between starting and active."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.calls = 0

    def effective_encoding(self, encoding: Any) -> Any:
        return encoding

    async def start(
        self, recording_id: str, room_id: str, object_key: str, layout: str, encoding: Any
    ) -> str:
        self.calls += 1
        if self.calls == 1:
            await self.release.wait()
            raise RuntimeError("the crashed start is finally cancelled")
        return f"eg-{self.calls}"

    def close(self) -> None:
        """Nothing runs in a thread here."""

    async def stop(self, recording_id: str, egress_id: str | None) -> None:
        return None


@pytest.mark.parametrize("by", ["reconciler", "next start"])
async def test_a_recording_stuck_while_starting_is_failed_and_frees_the_room(
    settings_factory: Any, storage_settings: StorageSettings, by: str
) -> None:
    egress = HangingEgress()
    interval = 0.2 if by == "reconciler" else 3600.0
    running_platform = platform(
        settings_factory,
        storage_settings,
        egress,
        gateway={"command_timeout": 3.0},
        recording_start_timeout=4.0,  # longer than the gateway waits
        recording_reconcile_interval=interval,
    )
    try:
        async with running_platform as (client, _):
            room = await room_in_meeting(client)
            room_id = room["roomId"]

            async def hung() -> bool:
                response = await client.post("/api/v1/recordings", json={"roomId": room_id})
                return response.status_code == 503  # the start never answered

            await wait_for(hung)
            listed = (await client.get("/api/v1/recordings", params={"roomId": room_id})).json()
            (stuck,) = listed["recordings"]
            assert stuck["status"] == "starting"
            path = f"/api/v1/recordings/{stuck['recordingId']}"
            if by == "reconciler":

                async def failed() -> bool:
                    return bool((await client.get(path)).json()["status"] == "failed")

                await wait_for(failed, timeout=10)
            else:
                # Past the start timeout (the reconciler sleeps): the next start frees the room.
                # Time passing is the behaviour: wait until the clock is past the start timeout.
                timed_out_at = stuck["startDate"] / 1000 + 4.1
                await wait_for(lambda: time.time() > timed_out_at, timeout=10)
            second = await start_recording(client, room_id)
            assert second["status"] == "active"
            got = (await client.get(path)).json()
            assert got["status"] == "failed"
            assert got["error"] == "timed out while starting"
            await client.post(f"/api/v1/recordings/{second['recordingId']}/stop")
            egress.release.set()
    finally:
        egress.release.set()


async def test_sweep_leaves_objects_younger_than_the_minimum_age(
    settings_factory: Any, storage_settings: StorageSettings, client_broker: Any
) -> None:
    storage = ObjectStorage(storage_settings)
    settings = settings_factory(RecordingsSettings)
    async with running(build_recordings(settings, storage=storage), settings):
        key = "recordings/ghost/ghost--EG_1--a.mp4"
        storage.put_stream(key, [b"uploaded a moment ago"], "video/mp4")
        young = await request(
            client_broker, "recordings", "sweep_orphans", SweepOrphans(minAgeMs=3_600_000)
        )
        assert young.ok and young.result["objectsWithoutRecord"] == []
        assert storage.stat(key) is not None
        old = await request(client_broker, "recordings", "sweep_orphans", SweepOrphans(minAgeMs=0))
        assert old.ok and old.result["objectsWithoutRecord"] == [key]
        assert storage.stat(key) is None
