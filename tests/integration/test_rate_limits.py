"""Rate limits: wrong secrets, invalid credentials, API key budgets; shared by replicas.

Two gateways on one NATS stand for two replicas: what one counts, the other refuses.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx
import pytest

from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings
from services.meetings.main import build as build_meetings
from services.meetings.settings import MeetingsSettings
from services.rooms.main import build as build_rooms
from services.rooms.settings import RoomsSettings
from tests.support.http import serve_app
from tests.support.services import running, wait_for

KEY = "limits-key"
Gateways = Callable[..., Any]


@pytest.fixture
async def gateways(settings_factory: Any) -> AsyncIterator[Gateways]:
    """Start rooms and meetings; `gateways(n, **limits)` gives n gateway clients."""
    async with AsyncExitStack() as stack:
        rooms = settings_factory(RoomsSettings)
        meetings = settings_factory(MeetingsSettings)
        await stack.enter_async_context(running(build_rooms(rooms), rooms))
        await stack.enter_async_context(running(build_meetings(meetings), meetings))

        @asynccontextmanager
        async def start(count: int, **limits: Any) -> AsyncIterator[list[httpx.AsyncClient]]:
            async with AsyncExitStack() as inner:
                clients = []
                for _ in range(count):
                    app = create_app(settings_factory(GatewaySettings, api_key=KEY, **limits))
                    base = await inner.enter_async_context(serve_app(app))
                    client = await inner.enter_async_context(
                        httpx.AsyncClient(base_url=base, timeout=15)
                    )
                    client.app = app  # type: ignore[attr-defined]
                    clients.append(client)
                yield clients

        yield start


async def new_room(client: httpx.AsyncClient) -> tuple[str, str]:
    response = await client.post(
        "/api/v1/rooms", json={"roomName": "limited"}, headers={"X-API-KEY": KEY}
    )
    assert response.status_code == 201, response.text
    room = response.json()
    return room["roomId"], room["access"]["anonymous"]["speaker"]["url"].split("secret=")[1]


async def join(client: httpx.AsyncClient, room_id: str, secret: str) -> httpx.Response:
    return await client.post(
        f"/api/v1/rooms/{room_id}/join", json={"secret": secret, "participantName": "Eve"}
    )


def limited(response: httpx.Response) -> bool:
    return response.status_code == 429 and int(response.headers["retry-after"]) >= 1


async def test_wrong_join_secrets_are_limited_per_address_across_replicas(
    gateways: Gateways,
) -> None:
    async with gateways(2, join_failures_per_address="5/minute") as (a, b):
        room_id, secret = await new_room(a)
        statuses = [(await join(gw, room_id, "wrong")).status_code for gw in (a, b, a, b, a)]
        assert statuses == [401] * 5
        # Both replicas refuse now, even the right secret (not checked any more).
        assert limited(await join(b, room_id, "wrong"))
        assert limited(await join(a, room_id, secret))
        assert limited(
            await a.post(
                f"/meet/internal-api/v1/rooms/{room_id}/members/token", json={"secret": "wrong"}
            )
        )


async def test_wrong_join_secrets_are_limited_per_room_and_recover(gateways: Gateways) -> None:
    async with gateways(
        1, join_failures_per_address="1000/minute", join_failures_per_room="3 per 2 seconds"
    ) as (gw,):
        room_id, secret = await new_room(gw)
        other_id, other_secret = await new_room(gw)
        assert [(await join(gw, room_id, "nope")).status_code for _ in range(3)] == [401] * 3
        assert limited(await join(gw, room_id, secret))
        assert (await join(gw, other_id, other_secret)).status_code == 200  # other rooms work
        started = time.monotonic()
        while limited(response := await join(gw, room_id, secret)):
            assert time.monotonic() - started < 10, "the limit never recovered"
        assert response.status_code == 200


async def test_invalid_api_keys_are_limited_per_address(gateways: Gateways) -> None:
    async with gateways(2, credential_failures_per_address="4/minute") as (a, b):
        wrong = [
            (await gw.get("/api/v1/rooms", headers={"X-API-KEY": f"guess-{i}"})).status_code
            for i, gw in enumerate((a, b, a, b))
        ]
        assert wrong == [401] * 4
        assert limited(await a.get("/api/v1/rooms", headers={"X-API-KEY": "guess-5"}))
        assert limited(await b.get("/api/v1/rooms", headers={"Authorization": "Bearer x"}))


async def test_every_api_key_has_a_request_budget_shared_by_replicas(gateways: Gateways) -> None:
    async with gateways(2, requests_per_api_key="10/minute") as (a, b):
        key = {"X-API-KEY": KEY}
        assert all(
            [(await a.get("/api/v1/rooms", headers=key)).status_code == 200 for _ in range(10)]
        )
        assert limited(await a.get("/api/v1/rooms", headers=key))
        budget = a.app.state.rate_limits.api_keys  # type: ignore[attr-defined]
        await wait_for(lambda: not budget.pending, timeout=5)  # merged into the shared counter
        # The other replica learns the total with its first merge: at most a few more pass.
        statuses = []
        started = time.monotonic()
        while not statuses or statuses[-1] != 429:
            statuses.append((await b.get("/api/v1/rooms", headers=key)).status_code)
            assert time.monotonic() - started < 10
        assert len(statuses) <= 5, statuses


async def test_rate_limits_can_be_switched_off_for_tests(gateways: Gateways) -> None:
    async with gateways(
        1, rate_limits_enabled=False, credential_failures_per_address="2/minute"
    ) as (gw,):
        statuses = {
            (await gw.get("/api/v1/rooms", headers={"X-API-KEY": f"g{i}"})).status_code
            for i in range(10)
        }
        assert statuses == {401}
