"""Every rooms route against OpenVidu Meet v3.8.0's published spec, with exact bodies.

Each request body meetplane accepts is checked against the spec's request schema and each
response (success and documented errors) against the schema and headers of its status.
Real rooms, meetings and recordings services and the gateway on NATS and S3.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from services.recordings.storage import StorageSettings
from tests.support import reference
from tests.support.recording_platform import platform, room_in_meeting
from tests.support.services import wait_for

API = "/meet/api/v1"
SPEC = reference.PUBLIC_V380
HOUR_MS = 3_600_000


@pytest.fixture
async def gw(settings_factory: Any, storage_settings: StorageSettings) -> AsyncIterator[Any]:
    async with platform(settings_factory, storage_settings) as (client, _):
        yield client


async def call(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    *,
    expect: int,
    json: Any = None,
    **kwargs: Any,
) -> httpx.Response:
    """Send a request, check the status, and check the response against the spec."""
    if json is not None and expect < 400:
        reference.check_request(SPEC, method, reference.template(path), json)
    response = await client.request(method, f"{API}{path}", json=json, **kwargs)
    assert response.status_code == expect, (method, path, response.text)
    reference.check_response(
        SPEC,
        method,
        reference.template(path),
        expect,
        response.json(),
        dict(response.headers),
    )
    return response


def links(base: str, room: dict[str, Any]) -> dict[str, Any]:
    """The access a room shows, from its own secrets (checked to be well-formed)."""
    anonymous = room["access"]["anonymous"]
    for role, path in (("moderator", ""), ("speaker", ""), ("recording", "/recordings")):
        assert anonymous[role]["url"].startswith(f"{base}/room/{room['roomId']}{path}?secret=")
    return room["access"]  # type: ignore[no-any-return]


async def test_room_shapes_and_field_selection_conform(gw: httpx.AsyncClient) -> None:
    created = await call(gw, "POST", "/rooms", json={"roomName": "Shapes"}, expect=201)
    room = created.json()
    room_id = room["roomId"]
    base = room["access"]["user"]["url"].split("/room/")[0]  # the gateway's public URL
    assert created.headers["location"] == f"{base}{API}/rooms/{room_id}"
    # v3.8.0's default shape: no config/roles unless asked, `_extraFields` names them.
    assert room == {
        "roomId": room_id,
        "roomName": "Shapes",
        # The root admin owns rooms created with an API key (no identity service here).
        **({"owner": room["owner"]} if "owner" in room else {}),
        "creationDate": room["creationDate"],
        "access": links(base, room),
        "status": "open",
        "rolesUpdatedAt": room["creationDate"],
        "meetingEndAction": "none",
        "_extraFields": ["config", "roles"],
    }
    assert room_id.startswith("shapes-") and room["access"]["user"] == {
        "enabled": False,
        "url": f"{base}/room/{room_id}",
    }

    # `fields` and `X-Fields` combine; extra fields are added whatever `fields` says.
    picked = await call(
        gw,
        "GET",
        f"/rooms/{room_id}",
        params={"fields": "roomId", "extraFields": "config"},
        headers={"X-Fields": "status", "X-ExtraFields": "roles"},
        expect=200,
    )
    body = picked.json()
    assert set(body) == {"roomId", "status", "config", "roles", "_extraFields"}
    assert body["config"]["recording"] == {
        "enabled": True,
        "layout": "grid",
        "encoding": "H264_720P_30",
    }
    assert body["roles"]["speaker"]["permissions"]["canRecord"] is False

    unknown = await call(gw, "GET", f"/rooms/{room_id}", params={"fields": "nope"}, expect=422)
    assert unknown.json() == {
        "error": "Unprocessable Entity",
        "message": "Invalid request",
        "details": [{"field": "fields", "message": "unknown field(s): nope"}],
        "code": "invalid_request",
    }
    missing = await call(gw, "GET", "/rooms/no_such_room", expect=404)
    assert missing.json() == {
        "error": "Room Error",
        "message": 'Room "no_such_room" does not exist',
        "code": "room_not_found",
    }

    # Path room ids are sanitized as v3.8.0 does.
    sloppy = await call(gw, "GET", f"/rooms/ {room_id}--!", expect=200)
    assert sloppy.json()["roomId"] == room_id
    empty = await call(gw, "GET", "/rooms/-!-", expect=422)
    assert empty.json()["details"] == [
        {"field": "roomId", "message": "roomId cannot be empty after sanitization"}
    ]

    config = await call(gw, "GET", f"/rooms/{room_id}/config", expect=200)
    assert config.json() == body["config"]

    listed = await call(
        gw, "GET", "/rooms", params={"roomName": "Shapes", "fields": "roomId"}, expect=200
    )
    assert listed.json() == {
        "rooms": [{"roomId": room_id}],
        "_extraFields": ["config", "roles"],
        "pagination": {"isTruncated": False, "maxItems": 10},
    }


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"roomName": "x" * 51}, "roomName"),
        ({"config": {"chat": {"enabled": "true"}}}, "config.chat.enabled"),
        ({"roles": {"speaker": {"permissions": {"canRecord": 1}}}}, "roles.speaker"),
        ({"autoDeletionDate": "1900000000000"}, "autoDeletionDate"),
        ({"autoDeletionDate": 9223372036854775808}, "autoDeletionDate"),
        ({"unknownField": True}, "unknownField"),
    ],
)
async def test_create_room_validation_is_strict(
    gw: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    refused = await call(gw, "POST", "/rooms", json=body, expect=422)
    answer = refused.json()
    assert answer["error"] == "Unprocessable Entity" and answer["message"] == "Invalid request"
    assert any(d["field"].startswith(field) for d in answer["details"]), answer
    assert "pydantic" not in refused.text and "errors.pydantic.dev" not in refused.text


async def test_null_room_name_is_the_default_name(gw: httpx.AsyncClient) -> None:
    created = await call(gw, "POST", "/rooms", json={"roomName": None}, expect=201)
    assert created.json()["roomName"] == "Room"


async def test_list_filters_match_modes_and_sorts(gw: httpx.AsyncClient) -> None:
    now = int(time.time() * 1000)
    names = ["Alpha one", "alpha two", "Beta alpha"]
    ids = []
    for i, name in enumerate(names):
        body = {"roomName": name, "autoDeletionDate": now + (3 - i) * 2 * HOUR_MS}
        ids.append((await call(gw, "POST", "/rooms", json=body, expect=201)).json()["roomId"])

    async def matching(**params: Any) -> list[str]:
        got = await call(gw, "GET", "/rooms", params={**params, "fields": "roomId"}, expect=200)
        return [r["roomId"] for r in got.json()["rooms"]]

    assert await matching(roomName="Alpha one") == [ids[0]]  # exact, case-sensitive
    assert await matching(roomName="alpha one") == []
    assert await matching(roomName="alpha one", roomNameCaseInsensitive="true") == [ids[0]]
    assert set(await matching(roomName="alpha", roomNameMatchMode="prefix")) == {ids[1]}
    assert set(
        await matching(roomName="alpha", roomNameMatchMode="partial", roomNameCaseInsensitive=True)
    ) == set(ids)
    assert await matching(roomName="^Beta", roomNameMatchMode="regex") == [ids[2]]
    bad_regex = await call(
        gw, "GET", "/rooms", params={"roomName": "(", "roomNameMatchMode": "regex"}, expect=422
    )
    assert bad_regex.json()["details"] == [
        {"field": "roomName", "message": "Invalid regular expression pattern"}
    ]
    for value in ("yes", "1"):
        await call(gw, "GET", "/rooms", params={"roomNameCaseInsensitive": value}, expect=422)
    by_deletion = await matching(
        roomName="alpha",
        roomNameMatchMode="partial",
        roomNameCaseInsensitive="true",
        sortField="autoDeletionDate",
        sortOrder="asc",
    )
    assert by_deletion == list(reversed(ids))

    first = await call(
        gw, "GET", "/rooms", params={"maxItems": 2, "sortField": "autoDeletionDate"}, expect=200
    )
    page = first.json()["pagination"]
    assert page["isTruncated"] is True and page["maxItems"] == 2
    second = await call(
        gw,
        "GET",
        "/rooms",
        params={
            "maxItems": 2,
            "sortField": "autoDeletionDate",
            "nextPageToken": page["nextPageToken"],
        },
        expect=200,
    )
    seen = [r["roomId"] for r in first.json()["rooms"] + second.json()["rooms"]]
    assert seen == ids  # latest deletion date first


async def test_bulk_delete_reports_deleted_and_failed(gw: httpx.AsyncClient) -> None:
    a = (await call(gw, "POST", "/rooms", json={"roomName": "bulk a"}, expect=201)).json()
    b = (await call(gw, "POST", "/rooms", json={"roomName": "bulk b"}, expect=201)).json()
    partly = await call(
        gw, "DELETE", "/rooms", params={"roomIds": f"{a['roomId']},missing_room"}, expect=400
    )
    assert partly.json() == {
        "message": "1 room(s) failed to process while deleting",
        "deleted": [
            {
                "roomId": a["roomId"],
                "successCode": "room_deleted",
                "message": f"Room '{a['roomId']}' deleted successfully",
            }
        ],
        "failed": [
            {
                "roomId": "missing_room",
                "error": "Room Error",
                "message": 'Room "missing_room" does not exist',
            }
        ],
    }
    done = await call(
        gw, "DELETE", "/rooms", params={"roomIds": f"{b['roomId']}, {b['roomId']}-,"}, expect=200
    )
    assert done.json()["message"] == "All rooms successfully processed for deletion"
    assert [d["successCode"] for d in done.json()["deleted"]] == ["room_deleted"]
    assert done.json()["failed"] == []


async def test_live_meeting_locks_config_roles_and_access(gw: httpx.AsyncClient) -> None:
    room = await room_in_meeting(gw, roomName="Live")
    room_id = room["roomId"]

    async def live() -> bool:
        got = (await gw.get(f"{API}/rooms/{room_id}")).json()
        return bool(got["status"] == "active_meeting")

    await wait_for(live)
    locked = {
        "error": "Room Error",
        "message": f'Room "{room_id}" has an active meeting',
        "code": "room_meeting_in_progress",
    }
    busy = await call(gw, "DELETE", f"/rooms/{room_id}", expect=409)
    assert busy.json() == {
        "error": "room_has_active_meeting",
        "message": f"Room '{room_id}' cannot be deleted because it has an active meeting",
        "code": "room_has_active_meeting",
    }
    for path, body in (
        ("config", {"config": {"chat": {"enabled": False}}}),
        ("roles", {"config": {"speaker": {"permissions": {"canRecord": True}}}}),
        ("access", {"access": {"anonymous": {"speaker": {"enabled": False}}}}),
    ):
        refused = await call(gw, "PUT", f"/rooms/{room_id}/{path}", json=body, expect=409)
        assert refused.json() == locked, path

    # Closing a room with a live meeting is scheduled until the meeting ends: 202.
    closing = await call(
        gw, "PUT", f"/rooms/{room_id}/status", json={"status": "closed"}, expect=202
    )
    assert closing.json()["status"] == "active_meeting"
    assert closing.json()["meetingEndAction"] == "close"
    reopened = await call(
        gw, "PUT", f"/rooms/{room_id}/status", json={"status": "open"}, expect=200
    )
    assert reopened.json()["meetingEndAction"] == "none"

    scheduled = await call(
        gw,
        "DELETE",
        f"/rooms/{room_id}",
        params={"withMeeting": "when_meeting_ends"},
        headers={"X-ExtraFields": "config"},
        expect=202,
    )
    answer = scheduled.json()
    assert answer["successCode"] == "room_with_active_meeting_scheduled_to_be_deleted"
    assert answer["message"] == (
        f"Room '{room_id}' with active meeting scheduled to be deleted when the meeting ends"
    )
    assert answer["room"]["status"] == "active_meeting"
    assert answer["room"]["meetingEndAction"] == "delete"
    assert "config" in answer["room"] and answer["room"]["_extraFields"] == ["config", "roles"]
    shown = (await call(gw, "GET", f"/rooms/{room_id}", expect=200)).json()
    assert (shown["status"], shown["meetingEndAction"]) == ("active_meeting", "delete")


async def test_update_routes_answer_the_updated_resource(gw: httpx.AsyncClient) -> None:
    room = (await call(gw, "POST", "/rooms", json={"roomName": "upd"}, expect=201)).json()
    room_id = room["roomId"]
    config = await call(
        gw,
        "PUT",
        f"/rooms/{room_id}/config",
        json={"config": {"e2ee": {"enabled": True}}},
        expect=200,
    )
    nulled = await call(
        gw, "PUT", f"/rooms/{room_id}/config", json={"config": {"chat": None}}, expect=422
    )
    assert nulled.json()["details"] == [
        {"field": "config", "message": "chat must be an object, not null"}
    ]
    # e2ee on switches recording off rather than refusing the config.
    assert config.json()["e2ee"] == {"enabled": True}
    assert config.json()["recording"]["enabled"] is False
    roles = await call(
        gw,
        "PUT",
        f"/rooms/{room_id}/roles",
        json={"config": {"speaker": {"permissions": {"canRecord": True}}}},
        expect=200,
    )
    assert set(roles.json()) == {"moderator", "speaker"}
    assert roles.json()["speaker"]["permissions"]["canRecord"] is True
    access = await call(
        gw,
        "PUT",
        f"/rooms/{room_id}/access",
        json={"access": {"anonymous": {"speaker": {"enabled": False}}}},
        expect=200,
    )
    assert access.json()["anonymous"]["speaker"]["enabled"] is False
    assert set(access.json()) == {"anonymous", "user"}
    # rolesUpdatedAt moves with role and access changes.
    after = (await call(gw, "GET", f"/rooms/{room_id}", expect=200)).json()
    assert after["rolesUpdatedAt"] > room["creationDate"]
    closed = await call(
        gw, "PUT", f"/rooms/{room_id}/status", json={"status": "closed"}, expect=200
    )
    assert closed.json()["status"] == "closed" and closed.json()["roomId"] == room_id
