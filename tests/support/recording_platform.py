"""The recordings platform in one process for tests: real rooms, meetings, recordings and
gateway on real NATS and S3, and helpers to get a room into a meeting and record it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx

from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings
from services.meetings.main import build as build_meetings
from services.meetings.settings import MeetingsSettings
from services.recordings.main import build as build_recordings
from services.recordings.settings import RecordingsSettings
from services.recordings.storage import ObjectStorage, StorageSettings
from services.rooms.main import build as build_rooms
from services.rooms.settings import RoomsSettings
from tests.support.http import serve_app
from tests.support.services import running, wait_for

KEY = "recordings-key"


async def recordings_platform(
    settings_factory: Any,
    storage_settings: StorageSettings,
    egress: Any = None,
    gateway: dict[str, Any] | None = None,
    **recordings: Any,
) -> AsyncIterator[tuple[httpx.AsyncClient, ObjectStorage]]:
    """rooms, meetings, recordings (with `egress`, or the local one) and the gateway.

    `gateway` overrides gateway settings; other keyword arguments, recordings settings.
    """
    storage = ObjectStorage(storage_settings)
    async with AsyncExitStack() as stack:
        for build, cls in ((build_rooms, RoomsSettings), (build_meetings, MeetingsSettings)):
            settings = settings_factory(cls)
            await stack.enter_async_context(running(build(settings), settings))
        rec_settings = settings_factory(RecordingsSettings, **recordings)
        parts = build_recordings(rec_settings, storage=storage, egress=egress)
        await stack.enter_async_context(running(parts, rec_settings))
        base = await stack.enter_async_context(
            serve_app(
                create_app(
                    settings_factory(
                        GatewaySettings,
                        api_key=KEY,
                        # The tests' webhook receivers listen on loopback.
                        webhook_allowed_networks="127.0.0.0/8",
                        **(gateway or {}),
                    )
                )
            )
        )
        client = await stack.enter_async_context(
            httpx.AsyncClient(base_url=base, headers={"X-API-KEY": KEY}, timeout=30)
        )
        yield client, storage


async def room_in_meeting(http: httpx.AsyncClient, **room: Any) -> dict[str, Any]:
    created = (await http.post("/api/v1/rooms", json={"roomName": "rec", **room})).json()
    secret = created["access"]["anonymous"]["moderator"]["url"].split("secret=")[1]
    joined = await http.post(
        f"/api/v1/rooms/{created['roomId']}/join",
        json={"secret": secret, "participantName": "Alice"},
    )
    assert joined.status_code == 200, joined.text

    async def started() -> bool:
        probe = await http.post("/api/v1/recordings", json={"roomId": "no-such-room-x"})
        return probe.status_code == 404

    await wait_for(started)
    return created  # type: ignore[no-any-return]


async def record(
    http: httpx.AsyncClient, room_id: str, seconds: float = 1.5, timeout: float = 20
) -> dict[str, Any]:
    async def start() -> httpx.Response | None:
        response = await http.post("/api/v1/recordings", json={"roomId": room_id})
        return response if response.status_code == 201 else None

    started = await wait_for(start)  # the meeting event may still be on its way
    recording_id = started.json()["recordingId"]
    # Time passing is the behaviour: a recording of some length (the local backend records in
    # real time, and the API reports no duration before the recording is complete).
    await asyncio.sleep(seconds)
    stopped = await http.post(f"/api/v1/recordings/{recording_id}/stop")
    assert stopped.status_code == 202 and stopped.json()["status"] == "ending"

    async def complete() -> dict[str, Any] | None:
        got = (await http.get(f"/api/v1/recordings/{recording_id}")).json()
        return got if got["status"] == "complete" else None

    return await wait_for(complete, timeout=timeout)  # type: ignore[no-any-return]


# The platform as an async context manager: `async with platform(...) as (client, storage)`.
platform = asynccontextmanager(recordings_platform)
