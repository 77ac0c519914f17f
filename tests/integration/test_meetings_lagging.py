"""A join while the meetings service's view of the rooms is behind asks the rooms service.

The join first waits for the meetings consumer to have applied every room event
on the stream.  When that consumer cannot catch up in time (its leader died and
the lease has not moved yet, a backlog), the join asks the room's owner instead
of answering from a stale view: no 404 for a room created a moment ago, and no
entry with a link that was just regenerated.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

import pytest
from faststream.nats import NatsBroker

from services.meetings.main import build as build_meetings
from services.meetings.media import LocalMediaBackend, MediaSettings
from services.meetings.settings import MeetingsSettings
from services.rooms.main import build as build_rooms
from services.rooms.settings import RoomsSettings
from services.runtime.consumer import DurableConsumer
from services.runtime.rpc import request
from services.runtime.store import make_lease
from tests.integration.test_meetings_service import create_room, join
from tests.support.services import running


def platform(settings_factory: Any, meetings_settings: MeetingsSettings) -> list[Any]:
    """Rooms and meetings services on the test NATS, to enter in the test's exit stack."""
    rooms_settings = settings_factory(RoomsSettings)
    return [
        running(build_rooms(rooms_settings), rooms_settings),
        running(
            build_meetings(meetings_settings, media=LocalMediaBackend(MediaSettings())),
            meetings_settings,
        ),
    ]


async def a_missing_room_is_not_found(client_broker: NatsBroker) -> None:
    """A join to a room nobody has is a 404, asked of the owner or not."""
    unknown = await request(
        client_broker,
        "meetings",
        "join",
        {"roomId": "nope-000000", "secret": "x", "participantName": "Zed"},
        timeout=10,
    )
    assert not unknown.ok and unknown.error.error == "room_not_found"


async def test_join_asks_the_rooms_service_while_the_consumer_is_behind(
    settings_factory: Any, client_broker: NatsBroker
) -> None:
    # Hold the meetings consumer's lease: no replica of ours can apply room events.
    meetings_settings = settings_factory(MeetingsSettings)
    lease = make_lease(meetings_settings, "meetings", "consumer-meetings-events")
    assert lease.try_acquire()
    try:
        async with AsyncExitStack() as stack:
            for service in platform(settings_factory, meetings_settings):
                await stack.enter_async_context(service)
            room = await create_room(client_broker, roomName="lagging")
            # Links change only while no meeting is live (v3.8.0: 409 otherwise).
            regenerated = await request(
                client_broker,
                "rooms",
                "update_access",
                {"roomId": room["roomId"], "access": {"regenerate": ["speaker"]}},
            )
            assert regenerated.ok, regenerated.error
            stale = await join(client_broker, room, "speaker", "Eve")
            assert not stale.ok and stale.error.error == "invalid_secret"
            joined = await join(client_broker, regenerated.result, "speaker", "Dana")
            assert joined.ok, joined.error
            await a_missing_room_is_not_found(client_broker)
    finally:
        lease.release()


async def test_a_room_missing_here_is_confirmed_by_its_owner_before_a_404(
    settings_factory: Any, client_broker: NatsBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The barrier can pass too early (a stream head read during a JetStream leader change)."""
    meetings_settings = settings_factory(MeetingsSettings)
    lease = make_lease(meetings_settings, "meetings", "consumer-meetings-events")
    assert lease.try_acquire()  # room events are not applied here

    async def passes(*_: Any, **__: Any) -> bool:
        return True

    monkeypatch.setattr(DurableConsumer, "caught_up", passes)
    try:
        async with AsyncExitStack() as stack:
            for service in platform(settings_factory, meetings_settings):
                await stack.enter_async_context(service)
            room = await create_room(client_broker, roomName="early barrier")
            joined = await join(client_broker, room, "speaker", "Dana")
            assert joined.ok, joined.error
            await a_missing_room_is_not_found(client_broker)
    finally:
        lease.release()
