"""The authorization matrix: every documented route x every kind of credential.

Routes come from the gateway's own OpenAPI document, so a new route without a
policy fails here (and `create_app` refuses to build).  Expected outcomes come
from the policy table (`services.gateway.policy.POLICIES`) and the holder's
permissions; each cell is an HTTP call to the real gateway in front of the real
rooms and identity services on NATS.  A refused cell must carry the v3.8.0 body.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
from fastapi import APIRouter

from services.gateway.app import create_app
from services.gateway.policy import POLICIES, Policy, check_policies, documented_routes
from services.gateway.settings import GatewaySettings
from services.identity.main import build as build_identity
from services.identity.settings import IdentitySettings
from services.rooms.main import build as build_rooms
from services.rooms.settings import RoomsSettings
from tests.support.http import serve_app
from tests.support.services import running, wait_for

KEY = "matrix-key"
PUB, INT = "/meet/api/v1", "/meet/internal-api/v1"
KINDS = [
    "none",
    "wrong",
    "expired",
    "revoked",
    "member_with",
    "member_without",
    "moderator_link",
    "speaker_link",
    "recording_link",
    "user",
    "owner",
    "admin",
    "api_key",
]
USER_ROLES = {"admin": "admin", "user": "room_member", "owner": "room_manager"}
PLACEHOLDERS = {
    "userId": "ghost",
    "identity": "someone",
    "recordingId": "rec-1",
    "keyId": "abc123",
}


def expected(policy: Policy, kind: str, permissions: dict[str, bool] | None) -> int | None:
    """The status the table promises (None: allowed, i.e. neither 401 nor 403)."""
    if policy.signed:
        return 401  # no LiveKit signature is sent
    if policy.public:
        return None
    if policy.refresh:
        return 400  # no X-Refresh-Token sent
    if kind == "none":
        return None if policy.optional else 401
    if kind in ("wrong", "expired", "revoked"):
        return 401
    if kind == "api_key":
        return None if policy.api_key else 401
    if kind in USER_ROLES:
        if not policy.accepts_users:
            return 401
        if USER_ROLES[kind] in policy.roles or (kind == "owner" and policy.owner):
            return None
        return 403
    assert permissions is not None
    if policy.member is None:
        return 401
    if policy.member == "*" or permissions.get(policy.member):
        return None
    return 403


class RecordingsStandIn:
    """Answers `recordings.get` with the current room, everything else `not_found`.

    The policy needs a recording's room; the recordings service itself is tested
    elsewhere.
    """

    room_id = ""

    async def attach(self, nc: Any) -> None:
        async def handler(msg: Any) -> None:
            if msg.subject.endswith(".get"):
                body = json.loads(msg.data)
                reply: dict[str, Any] = {
                    "ok": True,
                    "result": {"recordingId": body["recordingId"], "roomId": self.room_id},
                }
            else:
                reply = {
                    "ok": False,
                    "error": {"kind": "not_found", "error": "recording_not_found", "message": "no"},
                }
            await msg.respond(json.dumps(reply).encode())

        await nc.subscribe("meetplane.cmd.recordings.*", cb=handler)


@pytest.fixture
async def gateway(settings_factory: Any, client_broker: Any) -> AsyncIterator[dict[str, Any]]:
    async with AsyncExitStack() as stack:
        rooms = settings_factory(RoomsSettings)
        identity = settings_factory(IdentitySettings, admin_password="root-pass")
        await stack.enter_async_context(running(build_rooms(rooms), rooms))
        await stack.enter_async_context(running(build_identity(identity), identity))
        stand_in = RecordingsStandIn()
        await stand_in.attach(client_broker._connection)
        app = create_app(settings_factory(GatewaySettings, api_key=KEY))
        base = await stack.enter_async_context(serve_app(app))
        client = await stack.enter_async_context(httpx.AsyncClient(base_url=base, timeout=15))
        yield {"client": client, "app": app, "recordings": stand_in}


async def _login(client: httpx.AsyncClient, user: str, password: str) -> str:
    response = await client.post(f"{INT}/auth/login", json={"userId": user, "password": password})
    assert response.status_code == 200, response.text
    return str(response.json()["accessToken"])


async def _user(client: httpx.AsyncClient, user: str, role: str) -> str:
    body = {"userId": user, "name": user, "role": role, "password": "pass-1"}
    created = await client.post(f"{PUB}/users", json=body, headers={"X-API-KEY": KEY})
    assert created.status_code == 201, created.text
    return await _login(client, user, "pass-1")


async def _token(client: httpx.AsyncClient, room_id: str, secret: str) -> str:
    response = await client.post(f"{INT}/rooms/{room_id}/members/token", json={"secret": secret})
    assert response.status_code == 200, response.text
    return str(response.json()["token"])


async def _room_credentials(
    client: httpx.AsyncClient, owner: str
) -> tuple[str, dict[str, tuple[dict[str, str], dict[str, bool] | None]]]:
    """A fresh room owned by `owner`, and member/link credentials for it."""
    room = await client.post(f"{PUB}/rooms", json={"roomName": "matrix"}, headers=owner_h(owner))
    assert room.status_code == 201, room.text
    room_id = room.json()["roomId"]
    key = {"X-API-KEY": KEY, "X-ExtraFields": "effectivePermissions"}
    all_off = {name: False for name in _permission_names()}
    members = {
        "member_with": {"name": "With", "baseRole": "moderator"},
        "member_without": {"name": "Without", "baseRole": "speaker", "customPermissions": all_off},
    }
    creds: dict[str, tuple[dict[str, str], dict[str, bool] | None]] = {}
    for kind, body in members.items():
        added = await client.post(f"{PUB}/rooms/{room_id}/members", json=body, headers=key)
        assert added.status_code == 201, added.text
        secret = added.json()["accessUrl"].split("secret=")[1]
        token = await _token(client, room_id, secret)
        creds[kind] = ({"X-Room-Member-Token": token}, added.json()["effectivePermissions"])
    links = room.json()["access"]["anonymous"]
    for role in ("moderator", "speaker", "recording"):
        token = await _token(client, room_id, links[role]["url"].split("secret=")[1])
        claims = client_tokens.member_claims(token)
        creds[f"{role}_link"] = ({"X-Room-Member-Token": token}, claims.permissions)
    return room_id, creds


def _permission_names() -> list[str]:
    from contracts.rooms import Permissions

    return list(Permissions.model_fields)


def owner_h(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


client_tokens: Any = None


def test_every_documented_route_has_exactly_one_policy() -> None:
    app = create_app(GatewaySettings(api_key="k"))
    routes = documented_routes(app)
    assert len(routes) == len(set(routes))
    assert set(routes) == set(POLICIES), "the table and the routes differ"


def test_a_route_without_a_policy_is_refused() -> None:
    app = create_app(GatewaySettings(api_key="k"))
    extra = APIRouter()

    @extra.get("/unguarded")
    async def unguarded() -> dict[str, str]:
        return {}

    app.include_router(extra, prefix="/meet/api/v1")
    app.openapi_schema = None
    with pytest.raises(RuntimeError, match="without an authorization policy"):
        check_policies(app)


async def test_every_route_answers_every_credential_as_the_table_says(
    gateway: dict[str, Any],
) -> None:
    global client_tokens
    client: httpx.AsyncClient = gateway["client"]
    app = gateway["app"]
    client_tokens = app.state.tokens
    owner = await _user(client, "owner", "room_manager")
    plain = await _user(client, "plain", "room_member")
    admin = await _login(client, "admin", "root-pass")
    revoked = await _user(client, "gone", "admin")
    assert (await client.delete(f"{PUB}/users/gone", headers={"X-API-KEY": KEY})).status_code == 200
    await wait_for(lambda: "gone" in app.state.revocations.state.deleted_users, timeout=2)
    expired = app.state.tokens.access_token("admin", "admin", "s-old", now=time.time() - 3600)
    fixed: dict[str, tuple[dict[str, str], dict[str, bool] | None]] = {
        "none": ({}, None),
        "wrong": (
            {"X-API-KEY": "nope", "Authorization": "Bearer nope", "X-Room-Member-Token": "nope"},
            None,
        ),
        "expired": (owner_h(expired), None),
        "revoked": (owner_h(revoked), None),
        "user": (owner_h(plain), None),
        "owner": (owner_h(owner), None),
        "admin": (owner_h(admin), None),
        "api_key": ({"X-API-KEY": KEY}, None),
    }
    spec = app.openapi()
    mismatches = []
    cells = 0
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            policy = POLICIES[_key(path, method)]
            room_id, creds = await _room_credentials(client, owner)
            gateway["recordings"].room_id = room_id
            url = path.replace("{roomId}", room_id).replace("{memberId}", creds_member_id(creds))
            for name, value in PLACEHOLDERS.items():
                url = url.replace(f"{{{name}}}", value)
            params = {
                p["name"]: "x"
                for p in operation.get("parameters", [])
                if p["in"] == "query" and p.get("required")
            }
            body = {"roomId": room_id} if path.endswith("/recordings") else {}
            for kind in KINDS:
                headers, permissions = creds.get(kind) or fixed[kind]
                response = await client.request(
                    method.upper(), url, params=params, json=body, headers=headers
                )
                cells += 1
                want = expected(policy, kind, permissions)
                got = response.status_code
                ok = got not in (401, 403) if want is None else got == want
                if ok and got in (401, 403):
                    category = "Authentication Error" if got == 401 else "Authorization Error"
                    ok = response.json().get("error") == category
                if not ok:
                    mismatches.append(f"{method.upper()} {path} as {kind}: {got}, want {want}")
            if path.endswith("/auth/logout"):  # that ended the callers' sessions: sign in again
                owner = await _login(client, "owner", "pass-1")
                fixed["owner"] = (owner_h(owner), None)
                fixed["user"] = (owner_h(await _login(client, "plain", "pass-1")), None)
                fixed["admin"] = (owner_h(await _login(client, "admin", "root-pass")), None)
    assert not mismatches, "\n".join(mismatches)
    assert cells == len(POLICIES) * len(KINDS)


def creds_member_id(creds: dict[str, Any]) -> str:
    token = creds["member_without"][0]["X-Room-Member-Token"]
    member_id: str = client_tokens.member_claims(token).member_id
    return member_id


def _key(path: str, method: str) -> tuple[str, str, str]:
    from services.gateway.policy import route_key

    return route_key(path, method)
