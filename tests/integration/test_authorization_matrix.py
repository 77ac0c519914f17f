"""The authorization matrix: every documented route x every kind of credential.

Routes come from the gateway's own OpenAPI document, so a new route without a
policy fails here (and `create_app` refuses to build).  Expected outcomes come
from the policy table (`services.gateway.policy.POLICIES`) and the holder's
permissions; each cell is an HTTP call to the real gateway in front of the real
rooms, identity, meetings and recordings services on NATS (recordings on a real
S3 server).  A refused cell must carry the v3.8.0 body; an allowed one must not
fail with a 5xx.

Speed: the routes share one room (with a live meeting, members, links and two
finished recordings) and run concurrently; only the routes that would destroy
what the others rely on get their own resource (`OWN_ROOM`, `OWN_RECORDING`),
and signing out runs last.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import APIRouter

from contracts.rooms import Permissions
from services.gateway.app import create_app
from services.gateway.policy import (
    POLICIES,
    Key,
    Policy,
    check_policies,
    documented_routes,
    grants,
    route_key,
)
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
    "room_user",
    "owner",
    "admin",
    "api_key",
]
# Signed-in users: kind -> (user id, role).  `room_user` is a speaker member of the room.
USERS = {
    "user": ("plain", "room_member"),
    "room_user": ("speaks", "room_member"),
    "owner": ("owner", "room_manager"),
    "gone": ("gone", "admin"),
}
PASSWORD = "pass-1"
ADMIN_PASSWORD = "root-pass"
PLACEHOLDERS = {"userId": "ghost", "identity": "someone", "keyId": "abc123"}
# Routes whose allowed calls would take away what other routes use.
OWN_ROOM = {("public", "DELETE", "/rooms/{roomId}")}
OWN_RECORDING = {("public", "DELETE", "/recordings/{recordingId}")}
LAST = {("internal", "POST", "/auth/logout")}  # ends the callers' sessions
PARALLEL_ROUTES = 6
CHEAP_HASHES = {"password_hash_time_cost": 1, "password_hash_memory_kib": 1024}

Credential = tuple[dict[str, str], dict[str, bool] | None]


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
    if kind in USERS or kind == "admin":
        role = "admin" if kind == "admin" else USERS[kind][1]
        if not policy.accepts_users:
            return 401
        if role in policy.roles or (kind == "owner" and policy.owner):
            return None
        if kind == "room_user" and policy.room_user and grants(permissions, policy.room_user):
            return None
        return 403
    if policy.member is None:
        return 401
    return None if grants(permissions, policy.member) else 403


@dataclass
class World:
    """Everything the walk needs: the client, the shared room and every credential."""

    client: httpx.AsyncClient
    app: Any
    room_id: str = ""
    recordings: dict[str, str] = field(default_factory=dict)
    target_member: str = ""
    creds: dict[str, Credential] = field(default_factory=dict)


@pytest.fixture
async def world(settings_factory: Any, storage_settings: StorageSettings) -> AsyncIterator[World]:
    async with AsyncExitStack() as stack:
        for build, cls, extra in (
            (build_rooms, RoomsSettings, {}),
            (build_identity, IdentitySettings, {"admin_password": ADMIN_PASSWORD, **CHEAP_HASHES}),
            (build_meetings, MeetingsSettings, {}),
        ):
            settings = settings_factory(cls, **extra)
            await stack.enter_async_context(running(build(settings), settings))
        recordings = settings_factory(RecordingsSettings, recording_max_seconds=0.4)
        parts = build_recordings(recordings, storage=ObjectStorage(storage_settings))
        await stack.enter_async_context(running(parts, recordings))
        gateway = settings_factory(
            GatewaySettings,
            api_key=KEY,
            ready_services="rooms,identity,meetings,recordings",
            ready_ping_timeout=10,  # a busy machine is not an authorization failure
            # It presents wrong credentials to every route on purpose: no rate limits.
            rate_limits_enabled=False,
        )
        app = create_app(gateway)
        base = await stack.enter_async_context(serve_app(app))
        client = await stack.enter_async_context(httpx.AsyncClient(base_url=base, timeout=30))
        world = World(client, app)

        async def platform_ready() -> bool:
            return (await client.get("/readyz/platform")).status_code == 200

        # Readiness is a route of the table too: walk it once everything answers.
        await wait_for(platform_ready)
        await _sign_in_everyone(world)
        await _shared_room(world)
        yield world


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _login(client: httpx.AsyncClient, user: str, password: str) -> str:
    response = await client.post(f"{INT}/auth/login", json={"userId": user, "password": password})
    assert response.status_code == 200, response.text
    return str(response.json()["accessToken"])


async def _user(client: httpx.AsyncClient, user: str, role: str) -> str:
    body = {"userId": user, "name": user, "role": role, "password": PASSWORD}
    created = await client.post(f"{PUB}/users", json=body, headers={"X-API-KEY": KEY})
    assert created.status_code == 201, created.text
    return await _login(client, user, PASSWORD)


async def _sign_in_everyone(world: World) -> None:
    client, app = world.client, world.app
    tokens = await asyncio.gather(*(_user(client, u, r) for u, r in USERS.values()))
    signed = dict(zip(USERS, tokens, strict=True))
    signed["admin"] = await _login(client, "admin", ADMIN_PASSWORD)
    gone = await client.delete(f"{PUB}/users/gone", headers={"X-API-KEY": KEY})
    assert gone.status_code == 200, gone.text
    await wait_for(lambda: "gone" in app.state.revocations.state.deleted_users, timeout=5)
    expired = app.state.tokens.access_token("admin", "admin", "s-old", now=time.time() - 3600)
    world.creds = {
        "none": ({}, None),
        "wrong": (
            {"X-API-KEY": "nope", "Authorization": "Bearer nope", "X-Room-Member-Token": "nope"},
            None,
        ),
        "expired": (bearer(expired), None),
        "revoked": (bearer(signed["gone"]), None),
        "api_key": ({"X-API-KEY": KEY}, None),
        **{kind: (bearer(signed[kind]), None) for kind in ("user", "owner", "admin")},
    }
    world.creds["room_user"] = (bearer(signed["room_user"]), None)  # permissions: _shared_room


async def _token(client: httpx.AsyncClient, room_id: str, secret: str) -> str:
    response = await client.post(f"{INT}/rooms/{room_id}/members/token", json={"secret": secret})
    assert response.status_code == 200, response.text
    return str(response.json()["token"])


async def _shared_room(world: World) -> None:
    """The owner's room: members, links, a live meeting and two finished recordings."""
    client = world.client
    owner = world.creds["owner"][0]
    room = await client.post(f"{PUB}/rooms", json={"roomName": "matrix"}, headers=owner)
    assert room.status_code == 201, room.text
    room_id = world.room_id = room.json()["roomId"]
    key = {"X-API-KEY": KEY, "X-ExtraFields": "effectivePermissions"}
    all_off = dict.fromkeys(Permissions.model_fields, False)
    bodies = {
        "member_with": {"name": "With", "baseRole": "moderator"},
        "member_without": {"name": "Without", "baseRole": "speaker", "customPermissions": all_off},
        "target": {"name": "Target", "baseRole": "speaker"},
        "room_user": {"userId": USERS["room_user"][0], "baseRole": "speaker"},
    }
    members = {}
    for kind, body in bodies.items():
        added = await client.post(f"{PUB}/rooms/{room_id}/members", json=body, headers=key)
        assert added.status_code == 201, added.text
        members[kind] = added.json()
    world.target_member = members["target"]["memberId"]
    world.creds["room_user"] = (
        world.creds["room_user"][0],
        members["room_user"]["effectivePermissions"],
    )
    for kind in ("member_with", "member_without"):
        secret = members[kind]["accessUrl"].split("secret=")[1]
        token = await _token(client, room_id, secret)
        world.creds[kind] = ({"X-Room-Member-Token": token}, members[kind]["effectivePermissions"])
    links = room.json()["access"]["anonymous"]
    for role in ("moderator", "speaker", "recording"):
        token = await _token(client, room_id, links[role]["url"].split("secret=")[1])
        claims = world.app.state.tokens.member_claims(token)
        world.creds[f"{role}_link"] = ({"X-Room-Member-Token": token}, claims.permissions)
    joined = await client.post(
        f"{PUB}/rooms/{room_id}/join",
        json={"secret": links["moderator"]["url"].split("secret=")[1], "participantName": "Mo"},
    )
    assert joined.status_code == 200, joined.text
    for name in ("shared", "to_delete"):
        world.recordings[name] = await _finished_recording(client, room_id)


async def _finished_recording(client: httpx.AsyncClient, room_id: str) -> str:
    key = {"X-API-KEY": KEY}

    async def started() -> str | None:
        response = await client.post(f"{PUB}/recordings", json={"roomId": room_id}, headers=key)
        return str(response.json()["recordingId"]) if response.status_code == 201 else None

    recording_id: str = await wait_for(started)  # the meeting event may still be on its way

    async def complete() -> bool:
        got = await client.get(f"{PUB}/recordings/{recording_id}", headers=key)
        # Recordings here stop at their 0.4 s maximum: limit_reached is a finished one.
        return got.json()["status"] in {"complete", "limit_reached"}

    await wait_for(complete, timeout=20)
    return recording_id


async def _own_room(world: World) -> str:
    response = await world.client.post(
        f"{PUB}/rooms", json={"roomName": "doomed"}, headers=world.creds["owner"][0]
    )
    assert response.status_code == 201, response.text
    return str(response.json()["roomId"])


async def _walk(world: World, path: str, method: str, operation: dict[str, Any]) -> list[str]:
    """Call one route with every kind of credential; the cells that disagree with the table."""
    key = route_key(path, method)
    policy = POLICIES[key]
    room_id = world.room_id
    if key in OWN_ROOM:
        assert policy.member is None, "member tokens are issued for the shared room"
        room_id = await _own_room(world)
    recording = world.recordings["to_delete" if key in OWN_RECORDING else "shared"]
    url = path.replace("{roomId}", room_id).replace("{memberId}", world.target_member)
    url = url.replace("{recordingId}", recording)
    for name, value in PLACEHOLDERS.items():
        url = url.replace(f"{{{name}}}", value)
    params = {
        p["name"]: "x"
        for p in operation.get("parameters", [])
        if p["in"] == "query" and p.get("required")
    }
    body = {"roomId": room_id} if path.endswith("/recordings") else {}
    wants = {kind: expected(policy, kind, world.creds[kind][1]) for kind in KINDS}
    # Refusals first: they change nothing, while the first allowed call may (a delete).
    order = sorted(KINDS, key=lambda kind: wants[kind] is None)
    mismatches = []
    for kind in order:
        response = await world.client.request(
            method.upper(), url, params=params, json=body, headers=world.creds[kind][0]
        )
        want = wants[kind]
        got = response.status_code
        ok = got not in (401, 403) and got < 500 if want is None else got == want
        if ok and got in (401, 403):
            category = "Authentication Error" if got == 401 else "Authorization Error"
            ok = response.json().get("error") == category
        if not ok:
            detail = response.text[:200] if got >= 500 else ""
            mismatches.append(f"{method.upper()} {path} as {kind}: {got}, want {want} {detail}")
    return mismatches


def test_every_documented_route_has_exactly_one_policy() -> None:
    app = create_app(GatewaySettings(api_key="k"))
    routes = documented_routes(app)
    assert len(routes) == len(set(routes))
    api_routes = {key for key, policy in POLICIES.items() if not policy.page}
    assert set(routes) == api_routes, "the table and the routes differ"


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


async def test_every_route_answers_every_credential_as_the_table_says(world: World) -> None:
    routes: list[tuple[str, str, dict[str, Any]]] = [
        (path, method, operation)
        for path, item in world.app.openapi()["paths"].items()
        for method, operation in item.items()
    ]
    walked: set[Key] = set()
    gate = asyncio.Semaphore(PARALLEL_ROUTES)

    async def walk(path: str, method: str, operation: dict[str, Any]) -> list[str]:
        async with gate:
            walked.add(route_key(path, method))
            return await _walk(world, path, method, operation)

    last = [r for r in routes if route_key(r[0], r[1]) in LAST]
    first = [r for r in routes if r not in last]
    results = await asyncio.gather(*(walk(*route) for route in first))
    for route in last:
        results.append(await walk(*route))
    mismatches = [line for result in results for line in result]
    assert not mismatches, "\n".join(mismatches)
    assert walked == {key for key, policy in POLICIES.items() if not policy.page}
