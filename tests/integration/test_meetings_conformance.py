"""The public meeting-control routes against OpenVidu Meet 3.9's spec, with exact bodies.

Real rooms, meetings and recordings services and the gateway on NATS and S3; each
response (success and documented errors) is checked against the 3.9 meeting-control
spec's schema for its status.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from services.recordings.storage import StorageSettings
from tests.support import reference
from tests.support.recording_platform import platform, room_in_meeting

API = "/meet/api/v1"
SPEC = reference.MEETING_CONTROL_39


@pytest.fixture
async def gw(settings_factory: Any, storage_settings: StorageSettings) -> AsyncIterator[Any]:
    async with platform(settings_factory, storage_settings) as (client, _):
        yield client


async def call(
    client: httpx.AsyncClient, method: str, path: str, *, expect: int, json: Any = None
) -> httpx.Response:
    """Send a request, check the status, and check the response against the spec."""
    if json is not None and expect < 400:
        reference.check_request(SPEC, method, reference.template(path), json)
    response = await client.request(method, f"{API}{path}", json=json)
    assert response.status_code == expect, (method, path, response.text)
    reference.check_response(
        SPEC, method, reference.template(path), expect, response.json(), dict(response.headers)
    )
    return response


async def test_meeting_control_routes_conform(gw: httpx.AsyncClient) -> None:
    room = await room_in_meeting(gw, roomName="Control")
    room_id = room["roomId"]
    secret = room["access"]["anonymous"]["speaker"]["url"].split("secret=")[1]
    bob = await gw.post(
        f"{API}/rooms/{room_id}/join", json={"secret": secret, "participantName": "Bob"}
    )
    assert bob.status_code == 200, bob.text

    meeting = (await call(gw, "GET", f"/meetings/{room_id}", expect=200)).json()
    assert meeting["roomId"] == room_id and meeting["roomName"] == "Control"
    assert meeting["participantCount"] == 2 and meeting["recordingActive"] is False
    assert isinstance(meeting["startDate"], int)

    listed = (await call(gw, "GET", f"/meetings/{room_id}/participants", expect=200)).json()
    by_name = {p["participantName"]: p for p in listed["participants"]}
    assert set(by_name) == {"Alice", "Bob"}
    alice = by_name["Alice"]
    assert alice == {
        "participantIdentity": alice["participantIdentity"],
        "participantName": "Alice",
        "role": "moderator",
        "joinDate": alice["joinDate"],
        "audioEnabled": False,
        "videoEnabled": False,
        "screenSharing": False,
    }
    bob_id = by_name["Bob"]["participantIdentity"]
    one = await call(gw, "GET", f"/meetings/{room_id}/participants/{bob_id}", expect=200)
    assert one.json() == by_name["Bob"]
    nobody = await call(gw, "GET", f"/meetings/{room_id}/participants/nobody", expect=404)
    assert nobody.json() == {
        "error": "Participant Error",
        "message": f'Participant "nobody" not found in room "{room_id}"',
        "code": "participant_not_found",
    }

    upgraded = await call(
        gw,
        "PUT",
        f"/meetings/{room_id}/participants/{bob_id}/role",
        json={"action": "upgrade"},
        expect=200,
    )
    assert upgraded.json()["message"] == (
        f'Moderation action "upgrade" applied to participant "{bob_id}" in room "{room_id}"'
    )
    again = await call(gw, "GET", f"/meetings/{room_id}/participants/{bob_id}", expect=200)
    assert again.json()["role"] == "moderator"
    refused = await call(
        gw,
        "PUT",
        f"/meetings/{room_id}/participants/{bob_id}/role",
        json={"action": "promote"},
        expect=422,
    )
    assert refused.json()["details"][0]["field"] == "action"

    kicked = await call(gw, "DELETE", f"/meetings/{room_id}/participants/{bob_id}", expect=200)
    assert kicked.json() == {
        "message": f"Participant '{bob_id}' kicked successfully from meeting in room '{room_id}'"
    }
    ended = await call(gw, "DELETE", f"/meetings/{room_id}", expect=200)
    assert ended.json()["message"] == f"Meeting in room '{room_id}' ended successfully"
    gone = await call(gw, "GET", f"/meetings/{room_id}", expect=404)
    assert gone.json()["error"] == "Meeting Error"
