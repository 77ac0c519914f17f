"""Every input gets a 4xx, never a 500/503 (issue 9.2), and the connection stays usable.

Each case is one that once answered 5xx or 400 where 413 was due.  Real gateway,
rooms, identity, meetings and recordings services on NATS, recordings on S3.
Raw sockets where an HTTP client would refuse to send the input (a non-UTF-8
header, a chunked body, two requests on one connection).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any
from urllib.parse import urlsplit

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

KEY = {"X-API-KEY": "bad-input-key"}
PUB = "/meet/api/v1"
BODY_LIMIT = 4096


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
                {"password_hash_time_cost": 1, "password_hash_memory_kib": 1024},
            ),
            (build_meetings, MeetingsSettings, {}),
        ):
            settings = settings_factory(cls, **extra)
            await stack.enter_async_context(running(build(settings), settings))
        recordings = settings_factory(RecordingsSettings, recording_max_seconds=0.4)
        parts = build_recordings(recordings, storage=ObjectStorage(storage_settings))
        await stack.enter_async_context(running(parts, recordings))
        gateway = settings_factory(
            GatewaySettings, api_key=KEY["X-API-KEY"], max_body_bytes=BODY_LIMIT
        )
        base = await stack.enter_async_context(serve_app(create_app(gateway)))
        yield await stack.enter_async_context(httpx.AsyncClient(base_url=base, timeout=30))


async def raw(base: str, *requests: bytes) -> list[bytes]:
    """Send `requests` one after another on ONE connection; the status line of each answer."""
    url = urlsplit(base)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    statuses = []
    try:
        for request in requests:
            writer.write(request)
            await writer.drain()
            status = await asyncio.wait_for(reader.readline(), 10)
            length = 0
            while (line := await asyncio.wait_for(reader.readline(), 10)) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            await reader.readexactly(length)
            statuses.append(status.split(b" ")[1])
    finally:
        writer.close()
    return statuses


def get(path: str, *headers: bytes) -> bytes:
    lines = [f"GET {path} HTTP/1.1".encode(), b"host: test", *headers]
    return b"\r\n".join(lines) + b"\r\n\r\n"


async def room(gw: httpx.AsyncClient) -> dict[str, Any]:
    created = await gw.post(f"{PUB}/rooms", json={"roomName": "fuzz"}, headers=KEY)
    assert created.status_code == 201, created.text
    return dict(created.json())


async def test_a_non_utf8_request_id_is_answered_everywhere(gw: httpx.AsyncClient) -> None:
    base = str(gw.base_url)
    bad_id = b"x-request-id: \xff\xfe\x80"
    key = f"x-api-key: {KEY['X-API-KEY']}".encode()
    statuses = await raw(base, get("/healthz", bad_id), get(f"{PUB}/rooms", bad_id, key))
    assert statuses == [b"200", b"200"]


async def test_numbers_and_lengths_past_the_store_limits_are_4xx(gw: httpx.AsyncClient) -> None:
    huge = 9223372036854775808  # one past SQLite's (and JetStream consumers') int64
    too_late = await gw.post(
        f"{PUB}/rooms", json={"roomName": "x", "autoDeletionDate": huge}, headers=KEY
    )
    assert too_late.status_code == 422, too_late.text
    long_key = {**KEY, "Idempotency-Key": "k" * 10_000}
    keyed = await gw.post(f"{PUB}/rooms", json={"roomName": "x"}, headers=long_key)
    assert keyed.status_code in (400, 422), keyed.text
    token = await gw.get(f"{PUB}/rooms", params={"nextPageToken": "9" * 400}, headers=KEY)
    assert token.status_code in (400, 422), token.text
    ids = ",".join(f"room-{i}" for i in range(5_000))
    bulk = await gw.delete(f"{PUB}/rooms", params={"roomIds": ids}, headers=KEY)
    assert bulk.status_code in (400, 422), bulk.text
    long_ids = ",".join(["r" * 3000] * 3)
    zipped = await gw.get(
        f"{PUB}/recordings/download", params={"recordingIds": long_ids}, headers=KEY
    )
    assert zipped.status_code in (400, 422), zipped.text
    for response in (too_late, keyed, token, bulk, zipped):
        body = response.json()
        assert set(body) >= {"error", "message"} and "pydantic" not in response.text


async def test_unknown_permission_names_are_refused(gw: httpx.AsyncClient) -> None:
    room_id = (await room(gw))["roomId"]
    roles = {"roles": {"speaker": {"permissions": {"canFlyToTheMoon": True}}}}
    response = await gw.put(f"{PUB}/rooms/{room_id}/roles", json=roles, headers=KEY)
    assert response.status_code == 422, response.text
    assert "canFlyToTheMoon" in response.text


async def test_a_range_of_thousands_of_digits_is_4xx(gw: httpx.AsyncClient) -> None:
    made = await room(gw)
    secret = made["access"]["anonymous"]["moderator"]["url"].split("secret=")[1]
    joined = await gw.post(
        f"{PUB}/rooms/{made['roomId']}/join", json={"secret": secret, "participantName": "Mo"}
    )
    assert joined.status_code == 200, joined.text

    async def started() -> str | None:
        response = await gw.post(f"{PUB}/recordings", json={"roomId": made["roomId"]}, headers=KEY)
        return str(response.json()["recordingId"]) if response.status_code == 201 else None

    recording_id = await wait_for(started)

    async def finished() -> bool:
        got = await gw.get(f"{PUB}/recordings/{recording_id}", headers=KEY)
        return got.json()["status"] in {"complete", "limit_reached"}

    await wait_for(finished)
    digits = "9" * 5000
    for header in (f"bytes={digits}-", f"bytes=0-{digits}", f"bytes=-{digits}"):
        media = await gw.get(
            f"{PUB}/recordings/{recording_id}/media", headers={**KEY, "Range": header}
        )
        assert media.status_code in (400, 416, 422), (header[:20], media.status_code)


async def test_a_chunked_body_over_the_limit_is_413_and_the_connection_stays_usable(
    gw: httpx.AsyncClient,
) -> None:
    base = str(gw.base_url)
    chunk = b"a" * 1000
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(BODY_LIMIT // 1000 + 2))
    chunked = (
        (
            f"POST {PUB}/rooms HTTP/1.1\r\nhost: test\r\nx-api-key: {KEY['X-API-KEY']}\r\n"
            "content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
        ).encode()
        + body
        + b"0\r\n\r\n"
    )
    invalid = (
        f"POST {PUB}/rooms HTTP/1.1\r\nhost: test\r\nx-api-key: {KEY['X-API-KEY']}\r\n"
        "content-type: application/json\r\ncontent-length: 2\r\n\r\n{{"
    ).encode()
    statuses = await raw(base, chunked, get("/healthz"), invalid, get("/healthz"))
    assert statuses == [b"413", b"200", b"422", b"200"]
