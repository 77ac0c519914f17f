"""LiveKit side effects follow from the meetings log and are retried until LiveKit accepts them.

Ending a meeting, evicting a participant or changing a role commits an event;
what LiveKit must then do (delete its room, remove the participant, update the
grants) is carried out from the log, so a LiveKit outage, or a crash of the
meetings service in between, delays it but never loses it.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

from faststream.nats import NatsBroker

from services.meetings.main import build as build_meetings
from services.meetings.media import LiveKitMediaBackend
from services.meetings.settings import MeetingsSettings
from services.rooms.main import build as build_rooms
from services.rooms.settings import RoomsSettings
from services.runtime.rpc import request
from tests.integration.test_livekit_backend import FakeLiveKit, livekit, settings
from tests.integration.test_meetings_service import create_room, join
from tests.integration.test_rooms_service import RecordingsStandIn
from tests.support.services import running, wait_for

__all__ = ["livekit"]  # the fixture, imported for this module's tests


def calls(fake: FakeLiveKit, method: str) -> int:
    return sum(1 for m, _, _ in fake.received if m.endswith(method))


async def test_livekit_effects_survive_an_outage_and_a_restart(
    settings_factory: Any,
    client_broker: NatsBroker,
    livekit: tuple[FakeLiveKit, str],
) -> None:
    fake, url = livekit
    await RecordingsStandIn().attach(client_broker)
    rooms_settings = settings_factory(RoomsSettings)
    meetings_settings = settings_factory(MeetingsSettings)
    async with running(build_rooms(rooms_settings), rooms_settings):
        async with AsyncExitStack() as stack:
            media = LiveKitMediaBackend(settings(url))
            await stack.enter_async_context(
                running(build_meetings(meetings_settings, media=media), meetings_settings)
            )
            room = await create_room(client_broker, roomName="outage")
            fake.rooms[room["roomId"]] = ["alice", "bob"]
            for name in ("Alice", "Bob"):
                assert (await join(client_broker, room, "moderator", name)).ok

            fake.fail_with = 503  # LiveKit is down
            kicked = await request(
                client_broker, "meetings", "evict", {"roomId": room["roomId"], "identity": "bob"}
            )
            ended = await request(client_broker, "meetings", "end", {"roomId": room["roomId"]})
            assert kicked.ok and ended.ok, "the meeting's own state changes regardless of LiveKit"
            await wait_for(lambda: calls(fake, "RemoveParticipant") >= 2)  # retried
            assert calls(fake, "DeleteRoom") == 0, "effects run in log order"
        # The meetings service stops (a crash or a deploy) while LiveKit is still down.

        fake.fail_with = None
        async with running(build_meetings(meetings_settings, media=media), meetings_settings):
            await wait_for(lambda: calls(fake, "DeleteRoom") >= 1)
            removals = [r for m, r, _ in fake.received if m.endswith("RemoveParticipant")]
            deletions = [r for m, r, _ in fake.received if m.endswith("DeleteRoom")]
    assert (removals[-1].room, removals[-1].identity) == (room["roomId"], "bob")
    assert deletions[-1].room == room["roomId"]
