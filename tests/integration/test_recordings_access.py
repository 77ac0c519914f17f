"""Who sees which recordings (v3.8.0): owners their rooms', members with the permission, member
tokens their own room's, API keys and admins all.

Real gateway, rooms, identity, meetings and recordings services on NATS, recordings
on a real S3 server (the local media backend records a short test pattern).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest

from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings
from services.identity.main import build as build_identity
from services.identity.settings import IdentitySettings
from services.meetings.main import build as build_meetings
from services.meetings.settings import MeetingsSettings
from services.recordings.main import build as build_recordings
from services.recordings.settings import RecordingsSettings
from services.recordings.storage import ObjectStorage, StorageSettings
from services.rooms.main import build as build_rooms
from services.rooms.settings import RoomsSettings
from tests.support.http import serve_app
from tests.support.services import running, wait_for

KEY = {"X-API-KEY": "access-key"}
PUB, INT = "/meet/api/v1", "/meet/internal-api/v1"


@pytest.fixture
async def gw(
    settings_factory: Any, storage_settings: StorageSettings
) -> AsyncIterator[httpx.AsyncClient]:
    async with AsyncExitStack() as stack:
        for build, cls, extra in (
            (build_rooms, RoomsSettings, {}),
            (
                build_identity,
                IdentitySettings,
                {
                    "admin_password": "root-pass",
                    "password_hash_time_cost": 1,
                    "password_hash_memory_kib": 1024,
                },
            ),
            (build_meetings, MeetingsSettings, {}),
        ):
            settings = settings_factory(cls, **extra)
            await stack.enter_async_context(running(build(settings), settings))
        recordings = settings_factory(RecordingsSettings, recording_max_seconds=0.4)
        parts = build_recordings(recordings, storage=ObjectStorage(storage_settings))
        await stack.enter_async_context(running(parts, recordings))
        base = await stack.enter_async_context(
            serve_app(create_app(settings_factory(GatewaySettings, api_key=KEY["X-API-KEY"])))
        )
        yield await stack.enter_async_context(httpx.AsyncClient(base_url=base, timeout=30))


async def signed_in(gw: httpx.AsyncClient, user: str, role: str) -> dict[str, str]:
    body = {"userId": user, "name": user.title(), "role": role, "password": "secret1"}
    assert (await gw.post(f"{PUB}/users", json=body, headers=KEY)).status_code == 201
    login = await gw.post(f"{INT}/auth/login", json={"userId": user, "password": "secret1"})
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['accessToken']}"}


async def recorded_room(
    gw: httpx.AsyncClient, headers: dict[str, str]
) -> tuple[dict[str, Any], str]:
    """A room created with `headers`, with a meeting and one finished recording."""
    room = await gw.post(f"{PUB}/rooms", json={"roomName": "rec"}, headers=headers)
    assert room.status_code == 201, room.text
    room_id = room.json()["roomId"]
    secret = room.json()["access"]["anonymous"]["moderator"]["url"].split("secret=")[1]
    joined = await gw.post(
        f"{PUB}/rooms/{room_id}/join", json={"secret": secret, "participantName": "Mo"}
    )
    assert joined.status_code == 200, joined.text

    async def started() -> str | None:
        response = await gw.post(f"{PUB}/recordings", json={"roomId": room_id}, headers=KEY)
        return str(response.json()["recordingId"]) if response.status_code == 201 else None

    recording_id: str = await wait_for(started)

    async def complete() -> bool:
        got = await gw.get(f"{PUB}/recordings/{recording_id}", headers=KEY)
        # Recordings here stop at their 0.4 s maximum: limit_reached is a finished one.
        return got.json()["status"] in {"complete", "limit_reached"}

    await wait_for(complete, timeout=20)
    return room.json(), recording_id


async def listed(gw: httpx.AsyncClient, headers: dict[str, str], **params: Any) -> set[str]:
    response = await gw.get(f"{PUB}/recordings", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return {r["recordingId"] for r in response.json()["recordings"]}


async def test_each_caller_reaches_the_recordings_of_the_rooms_they_may_see(
    gw: httpx.AsyncClient,
) -> None:
    ann = await signed_in(gw, "ann", "room_manager")
    bob = await signed_in(gw, "bob", "room_manager")
    max_ = await signed_in(gw, "max", "room_member")
    root = await gw.post(f"{INT}/auth/login", json={"userId": "admin", "password": "root-pass"})
    admin = {"Authorization": f"Bearer {root.json()['accessToken']}"}
    room_a, rec_a = await recorded_room(gw, ann)
    room_b, rec_b = await recorded_room(gw, bob)
    room_c, rec_c = await recorded_room(gw, KEY)
    assert room_c["owner"] == "admin"
    # max: a speaker member of A (may retrieve, not delete), a member of C without retrieval.
    for room, permissions in ((room_a, {}), (room_c, {"canRetrieveRecordings": False})):
        added = await gw.post(
            f"{PUB}/rooms/{room['roomId']}/members",
            json={"userId": "max", "baseRole": "speaker", "customPermissions": permissions},
            headers=KEY,
        )
        assert added.status_code == 201, added.text

    assert await listed(gw, KEY) == {rec_a, rec_b, rec_c}
    assert await listed(gw, admin) == {rec_a, rec_b, rec_c}
    assert await listed(gw, ann) == {rec_a}
    assert await listed(gw, bob) == {rec_b}
    assert await listed(gw, max_) == {rec_a}
    assert await listed(gw, ann, roomId=room_b["roomId"]) == set()
    link = room_a["access"]["anonymous"]["speaker"]["url"].split("secret=")[1]
    token = await gw.post(f"{INT}/rooms/{room_a['roomId']}/members/token", json={"secret": link})
    member = {"X-Room-Member-Token": token.json()["token"]}
    assert await listed(gw, member, roomId=room_b["roomId"]) == {rec_a}  # roomId ignored

    assert (await gw.get(f"{PUB}/recordings/{rec_a}", headers=max_)).status_code == 200
    assert (await gw.get(f"{PUB}/recordings/{rec_c}", headers=max_)).status_code == 403
    assert (await gw.get(f"{PUB}/recordings/{rec_b}", headers=ann)).status_code == 403
    assert (await gw.get(f"{PUB}/recordings/{rec_b}", headers=member)).status_code == 403
    assert (await gw.delete(f"{PUB}/recordings/{rec_a}", headers=max_)).status_code == 403
    zip_b = await gw.get(f"{PUB}/recordings/download", params={"recordingIds": rec_b}, headers=ann)
    assert zip_b.status_code == 400 and zip_b.json()["error"] == "Recording Error"
    zip_a = await gw.get(f"{PUB}/recordings/download", params={"recordingIds": rec_a}, headers=max_)
    assert zip_a.status_code == 200 and zip_a.content[:2] == b"PK"
    # v3.8.0: starting and stopping take an API key or a member token, no access token.
    start = await gw.post(f"{PUB}/recordings", json={"roomId": room_a["roomId"]}, headers=ann)
    assert start.status_code == 401

    bulk = await gw.delete(
        f"{PUB}/recordings", params={"recordingIds": f"{rec_a},{rec_b}"}, headers=ann
    )
    assert bulk.status_code == 400, bulk.text
    assert bulk.json()["deleted"] == [rec_a]
    assert [f["recordingId"] for f in bulk.json()["failed"]] == [rec_b]
    assert await listed(gw, KEY) == {rec_b, rec_c}


async def test_a_revoked_share_link_stops_working(gw: httpx.AsyncClient) -> None:
    _, recording_id = await recorded_room(gw, KEY)
    url = (await gw.get(f"{PUB}/recordings/{recording_id}/url", headers=KEY)).json()["url"]
    old = url.split("recordingSecret=")[1]
    shared = {"recordingSecret": old}
    assert (await gw.get(f"{PUB}/recordings/{recording_id}", params=shared)).status_code == 200
    revoked = await gw.delete(f"{PUB}/recordings/{recording_id}/url", headers=KEY)
    assert revoked.status_code == 200, revoked.text
    for path in ("", "/media", "/download"):
        refused = await gw.get(f"{PUB}/recordings/{recording_id}{path}", params=shared)
        assert refused.status_code == 400, (path, refused.text)
    # A new link works; the recording itself is untouched.
    fresh = (await gw.get(f"{PUB}/recordings/{recording_id}/url", headers=KEY)).json()["url"]
    new = fresh.split("recordingSecret=")[1]
    assert new != old
    got = await gw.get(f"{PUB}/recordings/{recording_id}", params={"recordingSecret": new})
    assert got.status_code == 200 and got.json()["status"] in {"complete", "limit_reached"}
    # Without credentials nobody revokes links.
    assert (await gw.delete(f"{PUB}/recordings/{recording_id}/url")).status_code == 401


async def test_a_share_link_older_than_the_maximum_lifetime_is_refused_and_renewed(
    gw: httpx.AsyncClient, settings_factory: Any
) -> None:
    _, recording_id = await recorded_room(gw, KEY)
    short = settings_factory(GatewaySettings, api_key=KEY["X-API-KEY"], share_link_max_seconds=2)
    async with (
        serve_app(create_app(short)) as base,
        httpx.AsyncClient(base_url=base, timeout=30) as strict,
    ):
        url = (await strict.get(f"{PUB}/recordings/{recording_id}/url", headers=KEY)).json()["url"]
        old = url.split("recordingSecret=")[1]

        async def expired() -> bool:
            got = await strict.get(
                f"{PUB}/recordings/{recording_id}", params={"recordingSecret": old}
            )
            return got.status_code == 400 and "expired" in got.json()["message"]

        await wait_for(expired, timeout=15, interval=0.2)
        # Asking for the link again makes a new one, which works.
        url = (await strict.get(f"{PUB}/recordings/{recording_id}/url", headers=KEY)).json()["url"]
        new = url.split("recordingSecret=")[1]
        assert new != old
        got = await strict.get(f"{PUB}/recordings/{recording_id}", params={"recordingSecret": new})
        assert got.status_code == 200
