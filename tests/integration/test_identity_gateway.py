"""Identity through the real gateway: users, sign-in, API keys, members, on NATS x SQLite/PostgreSQL."""

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
from services.rooms.main import build as build_rooms
from services.rooms.settings import RoomsSettings
from tests.support.http import serve_app
from tests.support.identity_spec import SpecRecorder, validating_client
from tests.support.services import running, stream_events, wait_for

KEY = "identity-bootstrap-key"
ADMIN_PASSWORD = "root-password"
PUB = "/meet/api/v1"
INT = "/meet/internal-api/v1"


@pytest.fixture
async def platform(
    settings_factory: Any, store: dict[str, str], nats_server: Any
) -> AsyncIterator[dict[str, Any]]:
    async with AsyncExitStack() as stack:
        rooms = settings_factory(RoomsSettings, **store)
        identity = settings_factory(
            IdentitySettings,
            admin_password=ADMIN_PASSWORD,
            session_ttl_seconds=3600,
            password_hash_time_cost=1,
            password_hash_memory_kib=1024,
            **store,
        )
        await stack.enter_async_context(running(build_rooms(rooms), rooms))
        await stack.enter_async_context(running(build_identity(identity), identity))
        gateways = []
        recorder = SpecRecorder()  # every identity response is checked against v3.8.0
        for _ in range(2):  # two replicas: revocations must reach both
            settings = settings_factory(
                GatewaySettings, api_key=KEY, login_failures_per_user="3/minute"
            )
            base = await stack.enter_async_context(serve_app(create_app(settings)))
            gateways.append(await stack.enter_async_context(validating_client(base, recorder)))
        yield {"gw": gateways, "nats": nats_server, "spec": recorder}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def login(gw: httpx.AsyncClient, user: str, password: str) -> dict[str, Any]:
    response = await gw.post(f"{INT}/auth/login", json={"userId": user, "password": password})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def create_user(
    gw: httpx.AsyncClient, user: str, role: str, password: str = "secret1"
) -> None:
    body = {"userId": user, "name": user.title(), "role": role, "password": password}
    response = await gw.post(f"{PUB}/users", json=body, headers={"X-API-KEY": KEY})
    assert response.status_code == 201, response.text
    assert response.headers["location"] == f"{PUB}/users/{user}"
    assert "password" not in response.text


async def test_user_signs_in_refreshes_owns_rooms_and_is_cut_off_everywhere(
    platform: dict[str, Any],
) -> None:
    gw, other = platform["gw"]
    await create_user(gw, "alice", "room_manager")
    tokens = await login(gw, "alice", "secret1")
    me = await other.get(f"{INT}/users/me", headers=bearer(tokens["accessToken"]))
    assert me.status_code == 200 and me.json()["role"] == "room_manager"

    room = await gw.post(
        f"{PUB}/rooms", json={"roomName": "Alice's"}, headers=bearer(tokens["accessToken"])
    )
    assert room.status_code == 201, room.text
    assert room.json()["owner"] == "alice"
    room_id = room.json()["roomId"]
    by_key = await gw.post(f"{PUB}/rooms", json={"roomName": "keyed"}, headers={"X-API-KEY": KEY})
    assert by_key.json()["owner"] == "admin"  # v3.8.0: API-key rooms belong to the root admin
    listed = await gw.get(f"{PUB}/rooms", headers=bearer(tokens["accessToken"]))
    assert [r["roomId"] for r in listed.json()["rooms"]] == [room_id]
    owned = await gw.get(f"{PUB}/rooms", params={"owner": "alice"}, headers={"X-API-KEY": KEY})
    assert [r["roomId"] for r in owned.json()["rooms"]] == [room_id]
    foreign = await gw.get(
        f"{PUB}/rooms/{by_key.json()['roomId']}", headers=bearer(tokens["accessToken"])
    )
    assert foreign.status_code == 403
    assert foreign.json()["error"] == "Authorization Error"

    refreshed = await other.post(
        f"{INT}/auth/refresh", headers={"X-Refresh-Token": tokens["refreshToken"]}
    )
    assert refreshed.status_code == 200, refreshed.text
    assert (
        await gw.get(f"{INT}/users/me", headers=bearer(refreshed.json()["accessToken"]))
    ).status_code == 200

    changed = await gw.post(
        f"{INT}/users/change-password",
        json={"currentPassword": "secret1", "newPassword": "secret2"},
        headers=bearer(tokens["accessToken"]),
    )
    assert changed.status_code == 200, changed.text
    old = await other.post(
        f"{INT}/auth/refresh", headers={"X-Refresh-Token": tokens["refreshToken"]}
    )
    assert old.status_code == 400 and old.json()["error"] == "Refresh Token Error"
    for client in (gw, other):  # the old access token dies on every replica
        await wait_for(
            lambda c=client: _status(c, f"{INT}/users/me", tokens["accessToken"], 401), timeout=1
        )
    fresh = changed.json()
    assert (
        await other.get(f"{INT}/users/me", headers=bearer(fresh["accessToken"]))
    ).status_code == 200

    deleted = await gw.delete(f"{PUB}/users/alice", headers={"X-API-KEY": KEY})
    assert deleted.status_code == 200 and deleted.json() == {
        "message": "User 'alice' deleted successfully"
    }
    for client in (gw, other):  # /rooms asks nobody about the user: the revocation decides
        await wait_for(
            lambda c=client: _status(c, f"{PUB}/rooms", fresh["accessToken"], 401), timeout=1
        )
    gone = await gw.post(f"{INT}/auth/refresh", headers={"X-Refresh-Token": fresh["refreshToken"]})
    assert gone.status_code == 400


async def _status(client: httpx.AsyncClient, path: str, token: str, expected: int) -> bool:
    return (await client.get(path, headers=bearer(token))).status_code == expected


async def test_failed_logins_are_limited_per_user_across_replicas(platform: dict[str, Any]) -> None:
    gw, other = platform["gw"]
    await create_user(gw, "bob", "room_member")
    statuses = []
    for client in (gw, other, gw, other):
        response = await client.post(
            f"{INT}/auth/login", json={"userId": "bob", "password": "nope!"}
        )
        statuses.append(response.status_code)
    assert statuses[:3] == [404, 404, 404]
    assert statuses[3] == 429
    limited = await gw.post(f"{INT}/auth/login", json={"userId": "bob", "password": "secret1"})
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1


async def test_api_keys_are_shown_once_stored_hashed_and_revocable(
    platform: dict[str, Any],
) -> None:
    gw, other = platform["gw"]
    admin = await login(gw, "admin", ADMIN_PASSWORD)
    headers = bearer(admin["accessToken"])
    assert (await gw.post(f"{INT}/api-keys", headers={"X-API-KEY": KEY})).status_code == 401
    first = (await gw.post(f"{INT}/api-keys", headers=headers)).json()
    second = (await gw.post(f"{INT}/api-keys", headers=headers)).json()
    listed = (await gw.get(f"{INT}/api-keys", headers=headers)).json()
    assert {k["keyId"] for k in listed} == {first["keyId"], second["keyId"]}
    assert all(first["key"] not in k["key"] and k["key"].endswith("…") for k in listed)
    for key in (first["key"], second["key"]):
        assert (await other.get(f"{PUB}/rooms", headers={"X-API-KEY": key})).status_code == 200
    revoked = await gw.delete(f"{INT}/api-keys/{first['keyId']}", headers=headers)
    assert revoked.status_code == 200
    await wait_for(lambda: _key_status(other, first["key"], 401), timeout=2)
    assert (
        await other.get(f"{PUB}/rooms", headers={"X-API-KEY": second["key"]})
    ).status_code == 200
    events = await stream_events(platform["nats"].url, "meetplane.evt.apikey.>")
    assert [e["type"] for e in events] == ["ApiKeyCreated", "ApiKeyCreated", "ApiKeyRevoked"]
    assert not any(first["key"] in str(e) or second["key"] in str(e) for e in events)


async def _key_status(client: httpx.AsyncClient, key: str, expected: int) -> bool:
    return (await client.get(f"{PUB}/rooms", headers={"X-API-KEY": key})).status_code == expected


async def test_members_get_tokens_with_their_permissions(platform: dict[str, Any]) -> None:
    gw, other = platform["gw"]
    key = {"X-API-KEY": KEY}
    await create_user(gw, "carol", "room_member")
    room = (await gw.post(f"{PUB}/rooms", json={"roomName": "team"}, headers=key)).json()
    room_id = room["roomId"]
    added = await gw.post(
        f"{PUB}/rooms/{room_id}/members",
        json={"userId": "carol", "baseRole": "speaker", "customPermissions": {"canRecord": True}},
        headers={**key, "X-ExtraFields": "effectivePermissions"},
    )
    assert added.status_code == 201, added.text
    member = added.json()
    assert member["memberId"] == "carol" and member["type"] == "user"
    assert member["effectivePermissions"]["canRecord"] is True
    assert member["effectivePermissions"]["canEndMeeting"] is False
    guest = (
        await gw.post(
            f"{PUB}/rooms/{room_id}/members",
            json={"name": "Dan", "baseRole": "moderator"},
            headers=key,
        )
    ).json()
    assert guest["type"] == "identified_guest" and "secret=" in guest["accessUrl"]
    again = await gw.post(
        f"{PUB}/rooms/{room_id}/members",
        json={"userId": "carol", "baseRole": "speaker"},
        headers=key,
    )
    assert again.status_code == 409
    both = await gw.post(
        f"{PUB}/rooms/{room_id}/members",
        json={"userId": "carol", "name": "x", "baseRole": "speaker"},
        headers=key,
    )
    assert both.status_code == 422

    listed = (
        await gw.get(
            f"{PUB}/rooms/{room_id}/members",
            params={"sortField": "name", "sortOrder": "asc"},
            headers=key,
        )
    ).json()
    assert [m["memberId"] for m in listed["members"]] == ["carol", guest["memberId"]]

    carol = await login(gw, "carol", "secret1")
    visible = (await gw.get(f"{PUB}/rooms", headers=bearer(carol["accessToken"]))).json()
    assert [r["roomId"] for r in visible["rooms"]] == [room_id]
    by_member = (await gw.get(f"{PUB}/rooms", params={"member": "carol"}, headers=key)).json()
    assert [r["roomId"] for r in by_member["rooms"]] == [room_id]

    token = await gw.post(
        f"{INT}/rooms/{room_id}/members/token", json={}, headers=bearer(carol["accessToken"])
    )
    assert token.status_code == 200, token.text
    member_token = {"X-Room-Member-Token": token.json()["token"]}
    assert (await other.get(f"{PUB}/rooms/{room_id}", headers=member_token)).status_code == 200
    # speaker + canRecord override, but no canEndMeeting:
    assert (
        await other.delete(f"{PUB}/meetings/{room_id}", headers=member_token)
    ).status_code == 403
    guest_secret = guest["accessUrl"].split("secret=")[1]
    guest_token = await gw.post(
        f"{INT}/rooms/{room_id}/members/token", json={"secret": guest_secret}
    )
    assert guest_token.status_code == 200
    wrong = await gw.post(f"{INT}/rooms/{room_id}/members/token", json={"secret": "nope"})
    assert wrong.status_code == 400

    removed = await gw.delete(f"{PUB}/rooms/{room_id}/members/carol", headers=key)
    assert removed.status_code == 200
    for client in (gw, other):
        await wait_for(lambda c=client: _member_status(c, room_id, member_token, 401), timeout=1)
    assert (await gw.get(f"{PUB}/rooms/{room_id}/members/carol", headers=key)).status_code == 404


async def _member_status(
    client: httpx.AsyncClient, room_id: str, headers: dict[str, str], expected: int
) -> bool:
    return (await client.get(f"{PUB}/rooms/{room_id}", headers=headers)).status_code == expected


async def test_users_list_filters_and_pages(platform: dict[str, Any]) -> None:
    gw, _ = platform["gw"]
    key = {"X-API-KEY": KEY}
    for name in ("erin", "eric", "frank"):
        await create_user(gw, name, "room_member")
    prefix = await gw.get(
        f"{PUB}/users", params={"name": "Er", "nameMatchMode": "prefix"}, headers=key
    )
    assert sorted(u["userId"] for u in prefix.json()["users"]) == ["eric", "erin"]
    pages, token = [], None
    while True:
        params: dict[str, Any] = {"maxItems": 2, "sortField": "name", "sortOrder": "asc"}
        if token:
            params["nextPageToken"] = token
        page = (await gw.get(f"{PUB}/users", params=params, headers=key)).json()
        pages += [u["userId"] for u in page["users"]]
        token = page["pagination"]["nextPageToken"]
        if not token:
            break
    assert pages == ["admin", "eric", "erin", "frank"]
    root = await gw.delete(f"{PUB}/users/admin", headers=key)
    assert root.status_code == 403
    bulk = await gw.delete(f"{PUB}/users", params={"userIds": "eric,nobody"}, headers=key)
    assert bulk.status_code == 400
    assert bulk.json()["deleted"] == ["eric"] and bulk.json()["failed"][0]["userId"] == "nobody"
