"""Meetings through the real gateway (in-process uvicorn) against real services and NATS."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest

from services.gateway.app import create_app
from services.gateway.livekit_webhooks import sign_livekit_webhook
from services.gateway.settings import GatewaySettings
from services.meetings.main import build as build_meetings
from services.meetings.settings import MeetingsSettings
from services.rooms.main import build as build_rooms
from services.rooms.settings import RoomsSettings
from services.runtime.settings import RuntimeSettings
from tests.support.http import serve_app
from tests.support.services import running

KEY = "gw-meetings-key"
LK = RuntimeSettings()


@pytest.fixture
async def http(settings_factory: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with AsyncExitStack() as stack:
        rooms = settings_factory(RoomsSettings)
        meetings = settings_factory(MeetingsSettings)
        await stack.enter_async_context(running(build_rooms(rooms), rooms))
        await stack.enter_async_context(running(build_meetings(meetings), meetings))
        gateway = settings_factory(GatewaySettings, api_key=KEY)
        base = await stack.enter_async_context(serve_app(create_app(gateway)))
        client = await stack.enter_async_context(
            httpx.AsyncClient(base_url=base, headers={"X-API-KEY": KEY}, timeout=15)
        )
        yield client


async def new_room(http: httpx.AsyncClient) -> dict[str, Any]:
    response = await http.post("/api/v1/rooms", json={"roomName": "gw"})
    assert response.status_code == 201
    return response.json()  # type: ignore[no-any-return]


def secret(room: dict[str, Any], role: str) -> str:
    return str(room["access"]["anonymous"][role]["url"].split("secret=")[1])


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"secret": "x"}, 422, "participantName"),
        ({"participantName": "A"}, 422, "secret"),
        ({"secret": "x", "participantName": "A" * 51}, 422, "participantName"),
        ({"secret": 5, "participantName": "A"}, 422, "secret"),
        ({"secret": "x", "participantName": "A", "admin": True}, 422, "admin"),
    ],
)
async def test_join_rejects_bad_input(
    http: httpx.AsyncClient, body: dict[str, Any], status: int, field: str
) -> None:
    room = await new_room(http)
    response = await http.post(
        f"/api/v1/rooms/{room['roomId']}/join", json=body, headers={"X-API-KEY": ""}
    )
    assert response.status_code == status
    assert field in [d["field"] for d in response.json()["details"]]


async def test_join_needs_no_api_key_but_admin_routes_do(http: httpx.AsyncClient) -> None:
    room = await new_room(http)
    joined = await http.post(
        f"/api/v1/rooms/{room['roomId']}/join",
        json={"secret": secret(room, "moderator"), "participantName": "Alice"},
        headers={"X-API-KEY": ""},
    )
    assert joined.status_code == 200, joined.text
    assert joined.json()["role"] == "moderator"
    wrong = await http.post(
        f"/api/v1/rooms/{room['roomId']}/join", json={"secret": "nope", "participantName": "Eve"}
    )
    assert wrong.status_code == 401 and wrong.json()["code"] == "invalid_secret"
    unknown = await http.post(
        "/api/v1/rooms/nope-000000/join", json={"secret": "x", "participantName": "E"}
    )
    assert unknown.status_code == 404
    anonymous = await http.delete(f"/api/v1/meetings/{room['roomId']}", headers={"X-API-KEY": ""})
    assert anonymous.status_code == 401
    assert (await http.get(f"/api/v1/meetings/{room['roomId']}")).json()["participants"][0][
        "identity"
    ] == "alice"
    bad_role = await http.put(
        f"/api/v1/meetings/{room['roomId']}/participants/alice/role", json={"role": "king"}
    )
    assert bad_role.status_code == 422 and bad_role.json()["details"][0]["field"] == "role"
    ghost = await http.delete(f"/api/v1/meetings/{room['roomId']}/participants/ghost")
    assert ghost.status_code == 404


async def test_livekit_webhooks_are_signature_checked_and_idempotent(
    http: httpx.AsyncClient,
) -> None:
    room = await new_room(http)
    joined = await http.post(
        f"/api/v1/rooms/{room['roomId']}/join",
        json={"secret": secret(room, "speaker"), "participantName": "Bob"},
    )
    assert joined.status_code == 200
    body = json.dumps(
        {
            "event": "participant_left",
            "id": "EV_left_1",
            "createdAt": "1",
            "room": {"name": room["roomId"]},
            "participant": {"identity": "bob"},
        }
    ).encode()
    signed = sign_livekit_webhook(body, LK.livekit_api_key, LK.livekit_api_secret)
    url = "/api/v1/livekit/webhook"
    headers = {"content-type": "application/webhook+json"}

    unsigned = await http.post(url, content=body, headers=headers)
    assert unsigned.status_code == 401 and unsigned.json()["error"] == "Authentication Error"
    tampered = await http.post(
        url, content=body.replace(b"bob", b"eve"), headers={**headers, "Authorization": signed}
    )
    assert tampered.status_code == 401
    forged = sign_livekit_webhook(body, LK.livekit_api_key, "another-secret-of-at-least-32-chars!!")
    assert (
        await http.post(url, content=body, headers={**headers, "Authorization": forged})
    ).status_code == 401

    first = await http.post(url, content=body, headers={**headers, "Authorization": signed})
    replay = await http.post(
        url, content=body, headers={**headers, "Authorization": f"Bearer {signed}"}
    )
    assert first.status_code == replay.status_code == 200
    assert first.json() == {"applied": True} and replay.json() == {"applied": False}
    meeting = (await http.get(f"/api/v1/meetings/{room['roomId']}")).json()
    assert meeting["participants"][0]["present"] is False


async def test_livekit_room_finished_reason_reaches_the_meeting(
    http: httpx.AsyncClient, nats_server: Any
) -> None:
    from tests.support.services import stream_events, wait_for

    room = await new_room(http)
    joined = await http.post(
        f"/api/v1/rooms/{room['roomId']}/join",
        json={"secret": secret(room, "speaker"), "participantName": "Bob"},
    )
    assert joined.status_code == 200
    body = json.dumps(
        {
            "event": "room_finished",
            "id": "EV_finished_1",
            "createdAt": "1",
            "room": {"name": room["roomId"]},
            "roomEndReason": "ROOM_END_SERVER_SHUTDOWN",
        }
    ).encode()
    signed = sign_livekit_webhook(body, LK.livekit_api_key, LK.livekit_api_secret)
    response = await http.post(
        "/api/v1/livekit/webhook",
        content=body,
        headers={"content-type": "application/webhook+json", "Authorization": signed},
    )
    assert response.status_code == 200 and response.json() == {"applied": True}

    async def reason() -> str | None:
        events = await stream_events(nats_server.url, "meetplane.evt.meeting.*", idle=0.2)
        ended = [
            e["data"]["reason"]
            for e in events
            if e["type"] == "MeetingEnded" and e["data"]["roomId"] == room["roomId"]
        ]
        return ended[0] if ended else None

    assert await wait_for(reason) == "media_server_shutdown"
