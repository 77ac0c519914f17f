"""Every identity route's answers, successes and errors, against OpenVidu Meet's v3.8.0 specs.

The client validates each response of the users, auth, API key, room member,
member token, `users/me` and `change-password` routes with the bundled
reference YAML (`tests/support/identity_spec.py`); the test drives each
operation through its documented outcomes and finally checks it saw them all.
Real gateway, rooms and identity services on NATS.
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
from services.rooms.main import build as build_rooms
from services.rooms.settings import RoomsSettings
from tests.support.http import serve_app
from tests.support.identity_spec import SpecRecorder, validating_client
from tests.support.services import running, wait_for

KEY = {"X-API-KEY": "conformance-key"}
PUB, INT = "/meet/api/v1", "/meet/internal-api/v1"
ROOT_PASSWORD = "root-pass"

# (api, method, spec path, status) every run must have produced and validated.
EXPECTED = {
    ("public", "POST", "/users", 201),
    ("public", "POST", "/users", 401),
    ("public", "POST", "/users", 403),
    ("public", "POST", "/users", 409),
    ("public", "POST", "/users", 422),
    ("public", "GET", "/users", 200),
    ("public", "GET", "/users", 422),
    ("public", "DELETE", "/users", 200),
    ("public", "DELETE", "/users", 400),
    ("public", "GET", "/users/{userId}", 200),
    ("public", "GET", "/users/{userId}", 404),
    ("public", "DELETE", "/users/{userId}", 200),
    ("public", "DELETE", "/users/{userId}", 403),
    ("public", "DELETE", "/users/{userId}", 404),
    ("public", "PUT", "/users/{userId}/password", 200),
    ("public", "PUT", "/users/{userId}/password", 404),
    ("public", "PUT", "/users/{userId}/password", 422),
    ("public", "PUT", "/users/{userId}/role", 200),
    ("public", "PUT", "/users/{userId}/role", 403),
    ("public", "PUT", "/users/{userId}/role", 404),
    ("public", "PUT", "/users/{userId}/role", 422),
    ("public", "POST", "/rooms/{roomId}/members", 201),
    ("public", "POST", "/rooms/{roomId}/members", 404),
    ("public", "POST", "/rooms/{roomId}/members", 409),
    ("public", "POST", "/rooms/{roomId}/members", 422),
    ("public", "GET", "/rooms/{roomId}/members", 200),
    ("public", "GET", "/rooms/{roomId}/members", 404),
    ("public", "DELETE", "/rooms/{roomId}/members", 200),
    ("public", "DELETE", "/rooms/{roomId}/members", 400),
    ("public", "GET", "/rooms/{roomId}/members/{memberId}", 200),
    ("public", "GET", "/rooms/{roomId}/members/{memberId}", 404),
    ("public", "PUT", "/rooms/{roomId}/members/{memberId}", 200),
    ("public", "PUT", "/rooms/{roomId}/members/{memberId}", 404),
    ("public", "PUT", "/rooms/{roomId}/members/{memberId}", 422),
    ("public", "DELETE", "/rooms/{roomId}/members/{memberId}", 200),
    ("public", "DELETE", "/rooms/{roomId}/members/{memberId}", 404),
    ("internal", "POST", "/auth/login", 200),
    ("internal", "POST", "/auth/login", 404),
    ("internal", "POST", "/auth/login", 422),
    ("internal", "POST", "/auth/login", 429),
    ("internal", "POST", "/auth/logout", 200),
    ("internal", "POST", "/auth/refresh", 200),
    ("internal", "POST", "/auth/refresh", 400),
    ("internal", "POST", "/api-keys", 201),
    ("internal", "POST", "/api-keys", 401),
    ("internal", "POST", "/api-keys", 403),
    ("internal", "GET", "/api-keys", 200),
    ("internal", "DELETE", "/api-keys", 200),
    ("internal", "GET", "/users/me", 200),
    ("internal", "GET", "/users/me", 401),
    ("internal", "POST", "/users/change-password", 200),
    ("internal", "POST", "/users/change-password", 400),
    ("internal", "POST", "/users/change-password", 401),
    ("internal", "POST", "/users/change-password", 422),
    ("internal", "POST", "/rooms/{roomId}/members/token", 200),
    ("internal", "POST", "/rooms/{roomId}/members/token", 400),
    ("internal", "POST", "/rooms/{roomId}/members/token", 401),
    ("internal", "POST", "/rooms/{roomId}/members/token", 403),
    ("internal", "POST", "/rooms/{roomId}/members/token", 404),
    ("internal", "POST", "/rooms/{roomId}/members/token", 409),
    ("internal", "POST", "/rooms/{roomId}/members/token", 422),
    ("internal", "POST", "/rooms/{roomId}/members/token/refresh", 200),
    ("internal", "POST", "/rooms/{roomId}/members/token/refresh", 401),
}


@pytest.fixture
async def gw(settings_factory: Any) -> AsyncIterator[tuple[httpx.AsyncClient, SpecRecorder]]:
    async with AsyncExitStack() as stack:
        rooms = settings_factory(RoomsSettings)
        identity = settings_factory(
            IdentitySettings,
            admin_password=ROOT_PASSWORD,
            password_hash_time_cost=1,
            password_hash_memory_kib=1024,
        )
        await stack.enter_async_context(running(build_rooms(rooms), rooms))
        await stack.enter_async_context(running(build_identity(identity), identity))
        settings = settings_factory(
            GatewaySettings, api_key=KEY["X-API-KEY"], login_failures_per_user="2/minute"
        )
        base = await stack.enter_async_context(serve_app(create_app(settings)))
        recorder = SpecRecorder()
        yield await stack.enter_async_context(validating_client(base, recorder)), recorder


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _login(gw: httpx.AsyncClient, user: str, password: str) -> dict[str, Any]:
    response = await gw.post(f"{INT}/auth/login", json={"userId": user, "password": password})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def _users(gw: httpx.AsyncClient) -> dict[str, str]:
    """Users, roles, passwords: their successes and documented errors.  Access tokens."""
    body = {"userId": "ana", "name": "Ana", "role": "room_manager", "password": "secret1"}
    assert (await gw.post(f"{PUB}/users", json=body, headers=KEY)).status_code == 201
    assert (await gw.post(f"{PUB}/users", json=body, headers=KEY)).status_code == 409
    assert (
        await gw.post(f"{PUB}/users", json={**body, "role": "king"}, headers=KEY)
    ).status_code == 422
    assert (await gw.post(f"{PUB}/users", json=body)).status_code == 401
    for user in ("bea", "cid"):
        created = await gw.post(
            f"{PUB}/users",
            json={
                "userId": user,
                "name": user.title(),
                "role": "room_member",
                "password": "secret1",
            },
            headers=KEY,
        )
        assert created.status_code == 201
    ana = (await _login(gw, "ana", "secret1"))["accessToken"]
    assert (await gw.post(f"{PUB}/users", json=body, headers=bearer(ana))).status_code == 403
    assert (await gw.get(f"{PUB}/users", params={"maxItems": 2}, headers=KEY)).status_code == 200
    assert (await gw.get(f"{PUB}/users", params={"maxItems": 0}, headers=KEY)).status_code == 422
    assert (await gw.get(f"{PUB}/users/ana", headers=KEY)).status_code == 200
    assert (await gw.get(f"{PUB}/users/nobody", headers=KEY)).status_code == 404
    password = f"{PUB}/users/cid/password"
    assert (await gw.put(password, json={"newPassword": "secret2"}, headers=KEY)).status_code == 200
    assert (await gw.put(password, json={"newPassword": "x"}, headers=KEY)).status_code == 422
    gone = f"{PUB}/users/nobody/password"
    assert (await gw.put(gone, json={"newPassword": "secret2"}, headers=KEY)).status_code == 404
    role = f"{PUB}/users/bea/role"
    assert (await gw.put(role, json={"role": "room_manager"}, headers=KEY)).status_code == 200
    assert (await gw.put(role, json={"role": "king"}, headers=KEY)).status_code == 422
    root = f"{PUB}/users/admin/role"
    assert (await gw.put(root, json={"role": "room_member"}, headers=KEY)).status_code == 403
    nobody = f"{PUB}/users/nobody/role"
    assert (await gw.put(nobody, json={"role": "admin"}, headers=KEY)).status_code == 404
    assert (await gw.delete(f"{PUB}/users/admin", headers=KEY)).status_code == 403
    assert (await gw.delete(f"{PUB}/users/nobody", headers=KEY)).status_code == 404
    bulk = await gw.delete(f"{PUB}/users", params={"userIds": "cid,nobody"}, headers=KEY)
    assert bulk.status_code == 400
    extra = await gw.post(
        f"{PUB}/users",
        json={"userId": "dan", "name": "Dan", "role": "room_member", "password": "secret1"},
        headers=KEY,
    )
    assert extra.status_code == 201
    assert (
        await gw.delete(f"{PUB}/users", params={"userIds": "dan"}, headers=KEY)
    ).status_code == 200
    bea = (await _login(gw, "bea", "secret1"))["accessToken"]
    return {"ana": ana, "bea": bea}


async def _sessions(gw: httpx.AsyncClient) -> None:
    """Sign-in, refresh, change of password, logout, and the login rate limit."""
    assert (await gw.post(f"{INT}/auth/login", json={"userId": "ana"})).status_code == 422
    signed = await _login(gw, "ana", "secret1")
    me = await gw.get(f"{INT}/users/me", headers=bearer(signed["accessToken"]))
    assert me.status_code == 200
    assert (await gw.get(f"{INT}/users/me", headers=bearer("nope"))).status_code == 401
    refreshed = await gw.post(
        f"{INT}/auth/refresh", headers={"X-Refresh-Token": signed["refreshToken"]}
    )
    assert refreshed.status_code == 200
    assert (await gw.post(f"{INT}/auth/refresh")).status_code == 400
    change = f"{INT}/users/change-password"
    headers = bearer(signed["accessToken"])
    wrong = {"currentPassword": "nope!", "newPassword": "secret3"}
    assert (await gw.post(change, json=wrong, headers=headers)).status_code == 400
    short = {"currentPassword": "secret1", "newPassword": "x"}
    assert (await gw.post(change, json=short, headers=headers)).status_code == 422
    assert (await gw.post(change, json=wrong)).status_code == 401
    right = {"currentPassword": "secret1", "newPassword": "secret3"}
    assert (await gw.post(change, json=right, headers=headers)).status_code == 200
    fresh = await _login(gw, "ana", "secret3")
    out = await gw.post(f"{INT}/auth/logout", headers={"X-Refresh-Token": fresh["refreshToken"]})
    assert out.status_code == 200
    failures = [
        (
            await gw.post(f"{INT}/auth/login", json={"userId": "bea", "password": "bad!!"})
        ).status_code
        for _ in range(3)
    ]
    assert failures == [404, 404, 429]


async def _api_keys(gw: httpx.AsyncClient, admin: str, other: str) -> None:
    assert (await gw.post(f"{INT}/api-keys", headers=KEY)).status_code == 401
    assert (await gw.post(f"{INT}/api-keys", headers=bearer(other))).status_code == 403
    assert (await gw.post(f"{INT}/api-keys", headers=bearer(admin))).status_code == 201
    assert (await gw.get(f"{INT}/api-keys", headers=bearer(admin))).status_code == 200
    assert (await gw.delete(f"{INT}/api-keys", headers=bearer(admin))).status_code == 200


async def _members(gw: httpx.AsyncClient, tokens: dict[str, str]) -> None:
    """Members and member tokens: successes and documented errors."""
    room = await gw.post(f"{PUB}/rooms", json={"roomName": "conf"}, headers=bearer(tokens["ana"]))
    assert room.status_code == 201, room.text
    room_id = room.json()["roomId"]
    members = f"{PUB}/rooms/{room_id}/members"
    added = await gw.post(members, json={"userId": "bea", "baseRole": "speaker"}, headers=KEY)
    assert added.status_code == 201
    again = await gw.post(members, json={"userId": "bea", "baseRole": "speaker"}, headers=KEY)
    assert again.status_code == 409
    both = {"userId": "bea", "name": "B", "baseRole": "speaker"}
    assert (await gw.post(members, json=both, headers=KEY)).status_code == 422
    missing = await gw.post(
        f"{PUB}/rooms/nope-1/members", json={"name": "G", "baseRole": "speaker"}, headers=KEY
    )
    assert missing.status_code == 404
    guest = (
        await gw.post(members, json={"name": "Gus", "baseRole": "moderator"}, headers=KEY)
    ).json()
    assert (await gw.get(members, headers=KEY)).status_code == 200
    assert (await gw.get(f"{PUB}/rooms/nope-1/members", headers=KEY)).status_code == 404
    assert (await gw.get(f"{members}/bea", headers=KEY)).status_code == 200
    assert (await gw.get(f"{members}/nobody", headers=KEY)).status_code == 404
    update = {"customPermissions": {"canRecord": True}}
    assert (await gw.put(f"{members}/bea", json=update, headers=KEY)).status_code == 200
    assert (await gw.put(f"{members}/nobody", json=update, headers=KEY)).status_code == 404
    bad = {"customPermissions": {"canFly": True}}
    assert (await gw.put(f"{members}/bea", json=bad, headers=KEY)).status_code == 422

    token_url = f"{INT}/rooms/{room_id}/members/token"
    secret = guest["accessUrl"].split("secret=")[1]
    by_secret = await gw.post(token_url, json={"secret": secret})
    assert by_secret.status_code == 200
    assert (await gw.post(token_url, json={"secret": "nope"})).status_code == 400
    assert (await gw.post(token_url, json={"secret": 5})).status_code == 422
    assert (await gw.post(token_url, json={}, headers=bearer("nope"))).status_code == 401
    outsider = await gw.post(
        f"{PUB}/users",
        json={"userId": "eve", "name": "Eve", "role": "room_member", "password": "secret1"},
        headers=KEY,
    )
    assert outsider.status_code == 201
    eve = (await _login(gw, "eve", "secret1"))["accessToken"]
    assert (await gw.post(token_url, json={}, headers=bearer(eve))).status_code == 403
    assert (
        await gw.post(f"{INT}/rooms/nope-1/members/token", json={"secret": "x"})
    ).status_code == 404
    member_token = {"X-Room-Member-Token": by_secret.json()["token"]}
    refreshed = await gw.post(f"{token_url}/refresh", headers=member_token)
    assert refreshed.status_code == 200
    assert (await gw.post(f"{token_url}/refresh")).status_code == 401
    closed = await gw.put(f"{PUB}/rooms/{room_id}/status", json={"status": "closed"}, headers=KEY)
    assert closed.status_code == 200, closed.text
    join = {"secret": secret, "joinMeeting": True, "participantName": "Gus"}
    assert (await gw.post(token_url, json=join)).status_code == 409

    assert (await gw.delete(f"{members}/{guest['memberId']}", headers=KEY)).status_code == 200
    assert (await gw.delete(f"{members}/nobody", headers=KEY)).status_code == 404
    partly = await gw.delete(members, params={"memberIds": "bea,nobody"}, headers=KEY)
    assert partly.status_code == 400
    readd = await gw.post(members, json={"name": "Hal", "baseRole": "speaker"}, headers=KEY)
    all_gone = await gw.delete(members, params={"memberIds": readd.json()["memberId"]}, headers=KEY)
    assert all_gone.status_code == 200


async def test_identity_routes_answer_as_the_v380_spec_says(
    gw: tuple[httpx.AsyncClient, SpecRecorder],
) -> None:
    client, recorder = gw
    tokens = await _users(client)
    admin = (await _login(client, "admin", ROOT_PASSWORD))["accessToken"]
    await _api_keys(client, admin, tokens["bea"])
    await _members(client, tokens)
    await _sessions(client)
    gone = await client.delete(f"{PUB}/users/bea", headers=KEY)
    assert gone.status_code == 200
    await wait_for(lambda: _status(client, f"{INT}/users/me", tokens["bea"], 401), timeout=2)
    missing = EXPECTED - {(a, m, p, s) for a, m, p, s in recorder.seen}
    assert not missing, f"not exercised: {sorted(missing)}"


async def _status(client: httpx.AsyncClient, path: str, token: str, expected: int) -> bool:
    return (await client.get(path, headers=bearer(token))).status_code == expected
