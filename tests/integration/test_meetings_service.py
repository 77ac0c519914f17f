"""The meetings service with the real rooms service on a real nats-server (SQLite, PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import pytest
from faststream.nats import NatsBroker
from livekit import api

from contracts.commands import rooms as rooms_cmd
from contracts.rooms import CreateRoomRequest
from services.meetings.main import build as build_meetings
from services.meetings.media import LocalMediaBackend, MediaSettings
from services.meetings.settings import MeetingsSettings
from services.rooms.main import build as build_rooms
from services.rooms.settings import RoomsSettings
from services.runtime.clock import ManualClock
from services.runtime.rpc import request
from tests.integration.test_rooms_service import RecordingsStandIn
from tests.support.services import running, stream_events, wait_for

MEDIA = MediaSettings()


@pytest.fixture
async def platform(
    settings_factory: Any, store: dict[str, str], client_broker: NatsBroker
) -> AsyncIterator[dict[str, Any]]:
    clock = ManualClock(start_ms=1_900_000_000_000)
    media = LocalMediaBackend(MEDIA)
    await RecordingsStandIn().attach(client_broker)
    async with AsyncExitStack() as stack:
        rooms_settings = settings_factory(RoomsSettings, **store)
        meetings_settings = settings_factory(MeetingsSettings, **store)
        await stack.enter_async_context(running(build_rooms(rooms_settings), rooms_settings))
        await stack.enter_async_context(
            running(build_meetings(meetings_settings, clock=clock, media=media), meetings_settings)
        )
        yield {"clock": clock, "media": media}


async def create_room(broker: NatsBroker, **fields: Any) -> dict[str, Any]:
    reply = await request(
        broker, "rooms", "create", rooms_cmd.CreateRoom(request=CreateRoomRequest(**fields))
    )
    assert reply.ok, reply.error
    return reply.result  # type: ignore[no-any-return]


async def join(broker: NatsBroker, room: dict[str, Any], role: str, name: str) -> Any:
    secret = room["anonymous"][role]["secret"]
    return await request(
        broker,
        "meetings",
        "join",
        {"roomId": room["roomId"], "secret": secret, "participantName": name},
        timeout=10,
    )


def claims(token: str) -> api.Claims:
    return api.TokenVerifier(MEDIA.livekit_api_key, MEDIA.livekit_api_secret).verify(token)


async def events_of(url: str, room_id: str | None = None) -> list[dict[str, Any]]:
    events = await stream_events(url, "meetplane.evt.meeting.*", idle=0.2)
    return [e for e in events if room_id is None or e["data"].get("roomId") == room_id]


async def test_join_issues_livekit_tokens_with_role_grants(
    platform: Any, client_broker: NatsBroker
) -> None:
    room = await create_room(
        client_broker, roles={"speaker": {"permissions": {"canWriteChat": False}}}
    )
    moderator = await join(client_broker, room, "moderator", "Alice")
    speaker = await join(client_broker, room, "speaker", "Bob")
    assert moderator.ok and speaker.ok, (moderator.error, speaker.error)
    assert moderator.result["meetingId"] == speaker.result["meetingId"]
    mod, spk = claims(moderator.result["token"]), claims(speaker.result["token"])
    assert (mod.identity, spk.identity) == ("alice", "bob")
    assert mod.video.room == spk.video.room == room["roomId"]
    assert mod.video.room_admin and not spk.video.room_admin
    assert mod.video.room_record and not spk.video.room_record
    assert mod.video.can_publish_data and not spk.video.can_publish_data
    assert await platform["media"].list_participants(room["roomId"]) == ["alice", "bob"]


async def test_wrong_secret_unknown_room_and_closed_room_are_refused(
    platform: Any, client_broker: NatsBroker
) -> None:
    room = await create_room(client_broker)
    wrong = await request(
        client_broker,
        "meetings",
        "join",
        {"roomId": room["roomId"], "secret": "guess", "participantName": "Eve"},
    )
    assert wrong.error.kind == "unauthorized" and "moderator" not in wrong.error.message
    recording_link = await join(client_broker, room, "recording", "Eve")
    assert recording_link.error.kind == "unauthorized"
    missing = await request(
        client_broker,
        "meetings",
        "join",
        {"roomId": "nope-000000", "secret": "x", "participantName": "Eve"},
    )
    assert missing.error.kind == "not_found"
    closed = await request(
        client_broker, "rooms", "update_status", {"roomId": room["roomId"], "status": "closed"}
    )
    assert closed.ok

    async def refused() -> bool:
        reply = await join(client_broker, room, "speaker", "Late")
        return reply.error is not None and reply.error.error == "room_closed"

    await wait_for(refused)


async def test_evict_role_change_and_end_publish_each_event_once(
    platform: Any, client_broker: NatsBroker, nats_server: Any
) -> None:
    room = await create_room(client_broker)
    room_id = room["roomId"]
    assert (await join(client_broker, room, "moderator", "Alice")).ok
    assert (await join(client_broker, room, "speaker", "Bob")).ok
    promoted = await request(
        client_broker,
        "meetings",
        "change_role",
        {"roomId": room_id, "identity": "bob", "role": "moderator"},
    )
    assert promoted.result["role"] == "moderator"
    evicted = await request(
        client_broker, "meetings", "evict", {"roomId": room_id, "identity": "bob"}
    )
    assert evicted.ok
    again = await join(client_broker, room, "speaker", "Bob")
    assert again.error.error == "participant_evicted"
    current = await request(client_broker, "meetings", "get", {"roomId": room_id})
    assert [p["identity"] for p in current.result["participants"] if p["present"]] == ["alice"]
    ended = await request(client_broker, "meetings", "end", {"roomId": room_id})
    assert ended.result["reason"] == "ended_by_admin"
    no_meeting = await request(client_broker, "meetings", "end", {"roomId": room_id})
    assert no_meeting.error.kind == "not_found"

    expected = [
        "MeetingStarted",
        "ParticipantJoined",
        "ParticipantJoined",
        "ParticipantRoleChanged",
        "ParticipantEvicted",
        "MeetingEnded",
    ]

    async def published() -> list[dict[str, Any]] | None:
        events = await events_of(nats_server.url, room_id)
        return events if [e["type"] for e in events] == expected else None

    events = await wait_for(published)
    assert events[-1]["data"]["reason"] == "ended_by_admin"
    assert len({e["id"] for e in events}) == len(events)


async def test_room_deleted_with_force_ends_the_meeting(
    platform: Any, client_broker: NatsBroker, nats_server: Any
) -> None:
    room = await create_room(client_broker)
    assert (await join(client_broker, room, "moderator", "Alice")).ok

    async def active() -> bool:
        got = await request(client_broker, "rooms", "get", {"roomId": room["roomId"]})
        return bool(got.result["status"] == "active_meeting")

    await wait_for(active)
    refused = await request(client_broker, "rooms", "delete", {"roomId": room["roomId"]})
    assert refused.error.error == "room_has_active_meeting"
    deleted = await request(
        client_broker, "rooms", "delete", {"roomId": room["roomId"], "withMeeting": "force"}
    )
    assert deleted.result["successCode"] == "room_with_active_meeting_deleted"

    async def ended() -> dict[str, Any] | None:
        events = await events_of(nats_server.url, room["roomId"])
        return next((e for e in events if e["type"] == "MeetingEnded"), None)

    assert (await wait_for(ended))["data"]["reason"] == "room_deleted"


async def test_when_meeting_ends_deletes_the_room_after_the_meeting(
    platform: Any, client_broker: NatsBroker
) -> None:
    room = await create_room(client_broker)
    room_id = room["roomId"]
    assert (await join(client_broker, room, "moderator", "Alice")).ok

    async def active() -> bool:
        got = await request(client_broker, "rooms", "get", {"roomId": room_id})
        return bool(got.result["status"] == "active_meeting")

    await wait_for(active)
    scheduled = await request(
        client_broker, "rooms", "delete", {"roomId": room_id, "withMeeting": "when_meeting_ends"}
    )
    assert scheduled.result["scheduled"] is True
    assert scheduled.result["successCode"] == "room_with_active_meeting_scheduled_to_be_deleted"
    # The room is closed to new joins at once (as far as events arrived); either answer is fine.
    late = await join(client_broker, room, "speaker", "Late")
    still = await request(client_broker, "meetings", "get", {"roomId": room_id})
    assert still.ok, "the meeting keeps running"
    assert (await request(client_broker, "meetings", "end", {"roomId": room_id})).ok

    async def gone() -> bool:
        got = await request(client_broker, "rooms", "get", {"roomId": room_id})
        return got.error is not None and got.error.kind == "not_found"

    await wait_for(gone)
    assert late.ok or late.error.error == "room_closed"


async def test_fifty_concurrent_first_joins_start_exactly_one_meeting(
    platform: Any, client_broker: NatsBroker, nats_server: Any
) -> None:
    room = await create_room(client_broker)
    replies = await asyncio.gather(
        *(join(client_broker, room, "speaker", f"user {i}") for i in range(50))
    )
    assert all(r.ok for r in replies), [r.error for r in replies if not r.ok][:3]
    assert len({r.result["meetingId"] for r in replies}) == 1

    async def settled() -> list[dict[str, Any]] | None:
        events = await events_of(nats_server.url, room["roomId"])
        return events if len(events) >= 51 else None

    events = await wait_for(settled, timeout=30)
    types = [e["type"] for e in events]
    assert types.count("MeetingStarted") == 1
    assert types.count("ParticipantJoined") == 50


async def test_livekit_webhook_replay_changes_nothing(
    platform: Any, client_broker: NatsBroker, nats_server: Any
) -> None:
    room = await create_room(client_broker)
    room_id = room["roomId"]
    assert (await join(client_broker, room, "moderator", "Alice")).ok
    assert (await join(client_broker, room, "speaker", "Bob")).ok
    left = {
        "event": "participant_left",
        "id": "EV_1",
        "room_name": room_id,
        "participant_identity": "bob",
    }
    first = await request(client_broker, "meetings", "livekit_webhook", left)
    replay = await request(client_broker, "meetings", "livekit_webhook", left)
    assert first.result == {"applied": True} and replay.result == {"applied": False}
    finished = {"event": "room_finished", "id": "EV_2", "room_name": room_id}
    assert (await request(client_broker, "meetings", "livekit_webhook", finished)).result == {
        "applied": True
    }
    assert (await request(client_broker, "meetings", "livekit_webhook", finished)).result == {
        "applied": False
    }

    async def settled() -> list[str] | None:
        types = [e["type"] for e in await events_of(nats_server.url, room_id)]
        return types if "MeetingEnded" in types else None

    await wait_for(settled)
    # Barrier instead of a pause for duplicates: the outbox publishes in commit order, so once
    # a meeting started later (in another room) is on the stream, anything the second webhook
    # might have committed is there too.
    marker = await create_room(client_broker)
    assert (await join(client_broker, marker, "moderator", "Marker")).ok

    async def marker_published() -> bool:
        return any(
            e["type"] == "MeetingStarted"
            for e in await events_of(nats_server.url, marker["roomId"])
        )

    await wait_for(marker_published)
    types = [e["type"] for e in await events_of(nats_server.url, room_id)]
    assert types.count("ParticipantLeft") == 1 and types.count("MeetingEnded") == 1


async def test_end_empty_ends_only_meetings_empty_long_enough(
    platform: Any, client_broker: NatsBroker
) -> None:
    clock: ManualClock = platform["clock"]
    idle_room, busy_room = await create_room(client_broker), await create_room(client_broker)
    assert (await join(client_broker, idle_room, "moderator", "Alice")).ok
    assert (await join(client_broker, busy_room, "moderator", "Bob")).ok
    assert (
        await request(
            client_broker, "meetings", "leave", {"roomId": idle_room["roomId"], "identity": "alice"}
        )
    ).ok
    clock.advance(299_000)
    early = await request(client_broker, "meetings", "end_empty", {"idleMs": 300_000})
    assert early.result["ended"] == []
    clock.advance(2_000)
    due = await request(client_broker, "meetings", "end_empty", {"idleMs": 300_000})
    again = await request(client_broker, "meetings", "end_empty", {"idleMs": 300_000})
    assert len(due.result["ended"]) == 1 and again.result["ended"] == []
    assert (await request(client_broker, "meetings", "get", {"roomId": busy_room["roomId"]})).ok
    assert (
        await request(client_broker, "meetings", "get", {"roomId": idle_room["roomId"]})
    ).error.kind == "not_found"


async def test_livekit_room_finished_records_livekits_reason(
    platform: Any, client_broker: NatsBroker, nats_server: Any
) -> None:
    cases = {
        "ROOM_END_IDLE_TIMEOUT": "empty_timeout",
        "ROOM_END_API_DELETE": "ended_by_admin",
        "ROOM_END_SERVER_SHUTDOWN": "media_server_shutdown",
        "ROOM_END_OPEN_FAILED": "livekit",
        "": "livekit",  # a LiveKit too old to say why
    }
    rooms = {}
    for livekit_reason in cases:
        room = await create_room(client_broker)
        assert (await join(client_broker, room, "moderator", "Alice")).ok
        finished = {
            "event": "room_finished",
            "id": f"EV_{livekit_reason or 'none'}",
            "room_name": room["roomId"],
            "room_end_reason": livekit_reason,
        }
        reply = await request(client_broker, "meetings", "livekit_webhook", finished)
        assert reply.result == {"applied": True}, reply.error
        rooms[room["roomId"]] = cases[livekit_reason]

    async def reasons() -> dict[str, str] | None:
        ended = {
            e["data"]["roomId"]: e["data"]["reason"]
            for e in await events_of(nats_server.url)
            if e["type"] == "MeetingEnded"
        }
        return ended if set(rooms) <= set(ended) else None

    ended = await wait_for(reasons)
    assert {room_id: ended[room_id] for room_id in rooms} == rooms


async def test_an_end_meetplane_asked_for_keeps_its_reason_when_livekit_reports_it(
    platform: Any, client_broker: NatsBroker, nats_server: Any
) -> None:
    room = await create_room(client_broker)
    assert (await join(client_broker, room, "moderator", "Alice")).ok
    assert (await request(client_broker, "meetings", "end", {"roomId": room["roomId"]})).ok
    # Deleting LiveKit's room makes LiveKit report room_finished (API delete) afterwards.
    finished = {
        "event": "room_finished",
        "id": "EV_after_end",
        "room_name": room["roomId"],
        "room_end_reason": "ROOM_END_API_DELETE",
    }
    reply = await request(client_broker, "meetings", "livekit_webhook", finished)
    assert reply.result == {"applied": False}

    async def ended() -> list[str] | None:
        events = await events_of(nats_server.url, room["roomId"])
        found = [e["data"]["reason"] for e in events if e["type"] == "MeetingEnded"]
        return found or None

    assert await wait_for(ended) == ["ended_by_admin"]
