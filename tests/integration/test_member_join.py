"""`joinMeeting: true` on the member token route: a LiveKit join token from the meetings service.

As in OpenVidu Meet v3.8.0 the token to join a meeting is a LiveKit token (room
join grant, the participant's identity and name, `livekitUrl` in its metadata)
and also the holder's `X-Room-Member-Token`.  The gateway decides the role and
effective permissions (identity service data, room roles) and asks the meetings
service over NATS, which admits the participant and signs the token.  Real
gateway, rooms, identity and meetings services on NATS.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import httpx
import jwt
import pytest
from livekit import api

from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings
from services.identity.main import build as build_identity
from services.identity.settings import IdentitySettings
from services.meetings.main import build as build_meetings
from services.meetings.settings import MeetingsSettings
from services.rooms.main import build as build_rooms
from services.rooms.settings import RoomsSettings
from services.runtime.settings import RuntimeSettings
from tests.support.http import serve_app
from tests.support.identity_spec import SpecRecorder, validating_client
from tests.support.services import running, wait_for

KEY = {"X-API-KEY": "join-key"}
PUB, INT = "/meet/api/v1", "/meet/internal-api/v1"
LIVEKIT = RuntimeSettings()


@pytest.fixture
async def gw(settings_factory: Any) -> AsyncIterator[httpx.AsyncClient]:
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
        gateway = settings_factory(GatewaySettings, api_key=KEY["X-API-KEY"])
        base = await stack.enter_async_context(serve_app(create_app(gateway)))
        yield await stack.enter_async_context(validating_client(base, SpecRecorder()))


def livekit_claims(token: str) -> api.Claims:
    """Verified as LiveKit verifies a client's token."""
    return api.TokenVerifier(LIVEKIT.livekit_api_key, LIVEKIT.livekit_api_secret).verify(token)


def member(token: str) -> dict[str, str]:
    return {"X-Room-Member-Token": token}


async def participants(gw: httpx.AsyncClient, room_id: str) -> dict[str, dict[str, Any]]:
    meeting = await gw.get(f"{PUB}/meetings/{room_id}", headers=KEY)
    assert meeting.status_code == 200, meeting.text
    return {p["identity"]: p for p in meeting.json()["participants"] if p["present"]}


async def test_join_tokens_come_from_the_meetings_service(gw: httpx.AsyncClient) -> None:
    room = (await gw.post(f"{PUB}/rooms", json={"roomName": "join"}, headers=KEY)).json()
    room_id = room["roomId"]
    token_url = f"{INT}/rooms/{room_id}/members/token"
    guest = await gw.post(
        f"{PUB}/rooms/{room_id}/members",
        json={
            "name": "Gina",
            "baseRole": "speaker",
            "customPermissions": {"canShareScreen": False, "canRecord": True},
        },
        headers=KEY,
    )
    assert guest.status_code == 201, guest.text
    guest_id = guest.json()["memberId"]
    secret = guest.json()["accessUrl"].split("secret=")[1]

    joined = await gw.post(token_url, json={"secret": secret, "joinMeeting": True})
    assert joined.status_code == 200, joined.text
    token = joined.json()["token"]
    claims = livekit_claims(token)  # a token LiveKit accepts
    assert claims.identity == guest_id and claims.name == "Gina"
    assert claims.video.room_join and claims.video.room == room_id
    assert "screen_share" not in claims.video.can_publish_sources
    metadata = json.loads(claims.metadata)
    assert metadata["livekitUrl"] == LIVEKIT.livekit_url and metadata["role"] == "speaker"
    assert metadata["member"]["permissions"]["canRecord"] is True
    assert guest_id in await participants(gw, room_id)  # admitted: the meeting started

    # The same token is the holder's room member token, with the member's permissions.
    assert (await gw.get(f"{PUB}/rooms/{room_id}", headers=member(token))).status_code == 200
    end = await gw.delete(f"{PUB}/meetings/{room_id}", headers=member(token))
    assert end.status_code == 403  # speaker: no canEndMeeting
    # Regenerated while connected: the same participant, no second join.
    again = await gw.post(token_url, json={"joinMeeting": True}, headers=member(token))
    assert again.status_code == 200, again.text
    assert livekit_claims(again.json()["token"]).identity == guest_id
    refreshed = await gw.post(f"{token_url}/refresh", headers=member(token))
    assert refreshed.status_code == 200, refreshed.text
    assert livekit_claims(refreshed.json()["token"]).identity == guest_id
    # Not joining: an API credential only, no LiveKit grant.
    plain = await gw.post(token_url, json={"secret": secret})
    with pytest.raises(Exception):
        livekit_claims(plain.json()["token"])

    # An anonymous moderator link: the identity comes from the name.
    link = room["access"]["anonymous"]["moderator"]["url"].split("secret=")[1]
    nameless = await gw.post(token_url, json={"secret": link, "joinMeeting": True})
    assert nameless.status_code == 400
    assert nameless.json()["error"] == "Room Member Error"
    mod = await gw.post(
        token_url, json={"secret": link, "joinMeeting": True, "participantName": "Mo Derator"}
    )
    assert mod.status_code == 200, mod.text
    assert livekit_claims(mod.json()["token"]).identity == "mo_derator"
    kicked = await gw.delete(
        f"{PUB}/meetings/{room_id}/participants/{guest_id}", headers=member(mod.json()["token"])
    )
    assert kicked.status_code == 200, kicked.text
    gone = await gw.post(f"{token_url}/refresh", headers=member(token))
    assert gone.status_code == 404  # no longer in the meeting
    recording = room["access"]["anonymous"]["recording"]["url"].split("secret=")[1]
    viewer = await gw.post(
        token_url, json={"secret": recording, "joinMeeting": True, "participantName": "Rec"}
    )
    assert viewer.status_code == 403

    # Removing the member voids its join token on the API.
    removed = await gw.delete(f"{PUB}/rooms/{room_id}/members/{guest_id}", headers=KEY)
    assert removed.status_code == 200
    await wait_for(lambda: _status(gw, room_id, token, 401), timeout=2)

    # A LiveKit token we did not issue (wrong secret) is no member token.
    forged = api.AccessToken(LIVEKIT.livekit_api_key, "x" * 40).with_identity("eve")
    forged_metadata = {"member": {**metadata["member"], "permissions": {"canEndMeeting": True}}}
    fake = forged.with_grants(api.VideoGrants(room_join=True, room=room_id)).with_metadata(
        json.dumps(forged_metadata)
    )
    refused = await gw.delete(f"{PUB}/meetings/{room_id}", headers=member(fake.to_jwt()))
    assert refused.status_code == 401


async def _status(gw: httpx.AsyncClient, room_id: str, token: str, expected: int) -> bool:
    return (await gw.get(f"{PUB}/rooms/{room_id}", headers=member(token))).status_code == expected


async def test_users_join_with_their_member_permissions_and_closed_rooms_refuse(
    gw: httpx.AsyncClient,
) -> None:
    user = {"userId": "uma", "name": "Uma", "role": "room_member", "password": "secret1"}
    assert (await gw.post(f"{PUB}/users", json=user, headers=KEY)).status_code == 201
    login = await gw.post(f"{INT}/auth/login", json={"userId": "uma", "password": "secret1"})
    access = {"Authorization": f"Bearer {login.json()['accessToken']}"}
    room_id = (await gw.post(f"{PUB}/rooms", json={"roomName": "u"}, headers=KEY)).json()["roomId"]
    token_url = f"{INT}/rooms/{room_id}/members/token"
    outsider = await gw.post(token_url, json={"joinMeeting": True}, headers=access)
    assert outsider.status_code == 403
    added = await gw.post(
        f"{PUB}/rooms/{room_id}/members",
        json={"userId": "uma", "baseRole": "moderator", "customPermissions": {"canRecord": False}},
        headers=KEY,
    )
    assert added.status_code == 201
    joined = await gw.post(token_url, json={"joinMeeting": True}, headers=access)
    assert joined.status_code == 200, joined.text
    claims = livekit_claims(joined.json()["token"])
    assert claims.identity == "uma" and claims.name == "Uma"
    assert claims.video.room_admin and not claims.video.room_record
    assert (await participants(gw, room_id))["uma"]["role"] == "moderator"
    assert jwt.get_unverified_header(joined.json()["token"]).get("kid") is None

    # v3.8.0: closing a room with a live meeting takes effect when the meeting ends.
    closed = await gw.put(f"{PUB}/rooms/{room_id}/status", json={"status": "closed"}, headers=KEY)
    assert closed.status_code == 202 and closed.json()["meetingEndAction"] == "close"
    assert (await gw.delete(f"{PUB}/meetings/{room_id}", headers=KEY)).status_code == 200

    async def room_closed() -> bool:
        got = await gw.get(f"{PUB}/rooms/{room_id}", headers=KEY)
        return bool(got.json()["status"] == "closed")

    await wait_for(room_closed)
    refused = await gw.post(token_url, json={"joinMeeting": True}, headers=access)
    assert refused.status_code == 409 and refused.json()["error"] == "Room Error"
