"""Unreadable names are refused with 422 at the gateway, before a service stores them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
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
from tests.support.services import running

KEY = "edge-key"


@pytest.fixture
async def http(settings_factory: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with AsyncExitStack() as stack:
        rooms = settings_factory(RoomsSettings)
        meetings = settings_factory(MeetingsSettings)
        await stack.enter_async_context(running(build_rooms(rooms), rooms))
        await stack.enter_async_context(running(build_meetings(meetings), meetings))
        gateway = settings_factory(GatewaySettings, api_key=KEY)
        base = await stack.enter_async_context(serve_app(create_app(gateway)))
        yield await stack.enter_async_context(
            httpx.AsyncClient(base_url=base, headers={"X-API-KEY": KEY}, timeout=15)
        )


@pytest.mark.parametrize("name", ["evil\u202egnp.exe", "nul\x00", "\u200b", "two\nlines"])
async def test_unreadable_room_and_participant_names_get_422(
    http: httpx.AsyncClient, name: str
) -> None:
    created = await http.post("/api/v1/rooms", json={"roomName": name})
    assert created.status_code == 422, created.text
    assert "roomName" in created.text
    room = (await http.post("/api/v1/rooms", json={"roomName": "fine"})).json()
    assert room["roomName"] == "fine"
    renamed = await http.put(f"/api/v1/rooms/{room['roomId']}", json={"roomName": name})
    assert renamed.status_code == 422
    secret = room["access"]["anonymous"]["speaker"]["url"].split("secret=")[1]
    joined = await http.post(
        f"/api/v1/rooms/{room['roomId']}/join", json={"secret": secret, "participantName": name}
    )
    assert joined.status_code == 422 and "participantName" in joined.text
    listed = (await http.get("/api/v1/rooms")).json()
    assert all(r["roomName"] == "fine" for r in listed["rooms"])


async def test_names_with_markup_are_shown_escaped_on_the_pages(http: httpx.AsyncClient) -> None:
    """Markup is readable text (accepted), and every page escapes it."""
    evil = "<script>alert(1)</script>"
    created = await http.post("/api/v1/rooms", json={"roomName": evil})
    assert created.status_code == 201, created.text
    room = created.json()
    secret = room["access"]["anonymous"]["moderator"]["url"].split("secret=")[1]
    page = await http.get(f"/room/{room['roomId']}", params={"secret": secret}, headers={})
    assert page.status_code == 200, page.text[:500]
    assert page.headers["content-type"].startswith("text/html")
    assert evil not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
