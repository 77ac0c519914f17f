"""Auto-deletion policies across rooms, meetings, recordings and janitor on real NATS and S3.

Each room has a live meeting and a finished recording when its auto-deletion
date comes; the janitor fires, the rooms service applies the policy, and the
other services follow the events.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest

from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings
from services.janitor.main import build as build_janitor
from services.janitor.settings import JanitorSettings
from services.meetings.main import build as build_meetings
from services.meetings.settings import MeetingsSettings
from services.recordings.main import build as build_recordings
from services.recordings.settings import RecordingsSettings
from services.recordings.storage import ObjectStorage, StorageSettings
from services.rooms.main import build as build_rooms
from services.rooms.settings import RoomsSettings
from services.runtime.clock import ManualClock
from tests.support.http import serve_app
from tests.support.services import running, stream_events, wait_for

KEY = "policy-key"
HOUR = 3_600_000


@pytest.fixture
async def platform(
    settings_factory: Any, storage_settings: StorageSettings
) -> AsyncIterator[dict[str, Any]]:
    clock = ManualClock(start_ms=1_900_000_000_000)
    storage = ObjectStorage(storage_settings)
    async with AsyncExitStack() as stack:
        for build, cls, extra in (
            (build_rooms, RoomsSettings, {"clock": clock}),
            (build_meetings, MeetingsSettings, {"clock": clock}),
            (build_recordings, RecordingsSettings, {"storage": storage}),
            (build_janitor, JanitorSettings, {"clock": clock}),
        ):
            settings = (
                settings_factory(cls, timer_poll_seconds=0.05)
                if cls is JanitorSettings
                else settings_factory(cls)
            )
            await stack.enter_async_context(running(build(settings, **extra), settings))
        base = await stack.enter_async_context(
            serve_app(create_app(settings_factory(GatewaySettings, api_key=KEY)))
        )
        http = await stack.enter_async_context(
            httpx.AsyncClient(base_url=base, headers={"X-API-KEY": KEY}, timeout=30)
        )
        yield {"http": http, "clock": clock, "storage": storage}


async def busy_room(
    http: httpx.AsyncClient, clock: ManualClock, policy: dict[str, str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    room = (
        await http.post(
            "/api/v1/rooms",
            json={
                "roomName": "doomed",
                "autoDeletionDate": clock.now_ms() + 2 * HOUR,
                "autoDeletionPolicy": policy,
            },
        )
    ).json()
    secret = room["access"]["anonymous"]["moderator"]["url"].split("secret=")[1]
    assert (
        await http.post(
            f"/api/v1/rooms/{room['roomId']}/join",
            json={"secret": secret, "participantName": "Alice"},
        )
    ).status_code == 200

    async def start() -> httpx.Response | None:
        response = await http.post("/api/v1/recordings", json={"roomId": room["roomId"]})
        return response if response.status_code == 201 else None

    recording = (await wait_for(start)).json()
    # Time passing is the behaviour: a recording of some length (the local backend records in
    # real time, and the API reports no duration before the recording is complete).
    await asyncio.sleep(1.0)
    await http.post(f"/api/v1/recordings/{recording['recordingId']}/stop")

    async def complete() -> dict[str, Any] | None:
        got = (await http.get(f"/api/v1/recordings/{recording['recordingId']}")).json()
        return got if got["status"] == "complete" else None

    return room, await wait_for(complete, timeout=20)


async def meeting_end_reason(url: str, room_id: str) -> str | None:
    events = await stream_events(url, "meetplane.evt.meeting.MeetingEnded", idle=0.2)
    reasons = [e["data"]["reason"] for e in events if e["data"]["roomId"] == room_id]
    return reasons[0] if reasons else None


@pytest.mark.parametrize("with_meeting", ["force", "when_meeting_ends"])
@pytest.mark.parametrize("with_recordings", ["force", "close"])
async def test_auto_deletion_policy(
    platform: dict[str, Any], nats_server: Any, with_meeting: str, with_recordings: str
) -> None:
    http, clock, storage = platform["http"], platform["clock"], platform["storage"]
    room, recording = await busy_room(
        http, clock, {"withMeeting": with_meeting, "withRecordings": with_recordings}
    )
    room_id = room["roomId"]
    key = f"recordings/{room_id}/{recording['filename']}"

    clock.advance(2 * HOUR + 1)

    if with_meeting == "when_meeting_ends":

        async def closed_to_joins() -> bool:
            got = (await http.get(f"/api/v1/rooms/{room_id}")).json()
            # v3.8.0: still active_meeting; what happens when it ends is the end action
            # (kept for its recordings: closed). Joins are refused meanwhile.
            action = "close" if with_recordings == "close" else "delete"
            return bool(got["status"] == "active_meeting" and got.get("meetingEndAction") == action)

        await wait_for(closed_to_joins)
        assert (await http.get(f"/api/v1/meetings/{room_id}")).status_code == 200  # still running
        assert (await http.delete(f"/api/v1/meetings/{room_id}")).status_code == 200
        expected_reason = "ended_by_admin"
    else:
        expected_reason = "auto_deleted"

    async def meeting_over() -> str | None:
        return await meeting_end_reason(nats_server.url, room_id)

    assert await wait_for(meeting_over, timeout=20) == expected_reason

    if with_recordings == "force":

        async def all_gone() -> bool:
            room_gone = (await http.get(f"/api/v1/rooms/{room_id}")).status_code == 404
            rec_gone = (
                await http.get(f"/api/v1/recordings/{recording['recordingId']}")
            ).status_code == 404
            return room_gone and rec_gone and storage.stat(key) is None

        await wait_for(all_gone, timeout=20)
    else:

        async def closed_with_recordings() -> bool:
            got = await http.get(f"/api/v1/rooms/{room_id}")
            return got.status_code == 200 and got.json()["status"] == "closed"

        await wait_for(closed_with_recordings, timeout=20)
        assert (await http.get(f"/api/v1/recordings/{recording['recordingId']}")).status_code == 200
        assert storage.stat(key) is not None
