"""The rooms service on a real nats-server, with SQLite and PostgreSQL event stores."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from faststream.nats import NatsBroker
from prometheus_client import REGISTRY

from contracts.commands import rooms as cmd
from contracts.rooms import CreateRoomRequest
from services.rooms.main import build
from services.rooms.settings import RoomsSettings
from services.runtime.clock import ManualClock
from services.runtime.rpc import request
from tests.support.services import running, stream_events, wait_for


class RecordingsStandIn:
    """Answers the rooms service's `room_has_recordings` query from a set."""

    def __init__(self) -> None:
        self.rooms_with_recordings: set[str] = set()

    async def attach(self, broker: NatsBroker) -> None:
        async def handler(msg: Any) -> None:
            import json

            room_id = json.loads(msg.data)["roomId"]
            reply = {"ok": True, "result": {"hasRecordings": room_id in self.rooms_with_recordings}}
            await msg.respond(json.dumps(reply).encode())

        nc = broker._connection
        assert nc is not None
        await nc.subscribe("meetplane.cmd.recordings.room_has_recordings", cb=handler)


@pytest.fixture
async def rooms(settings_factory: Any, store: dict[str, str]) -> AsyncIterator[dict[str, Any]]:
    settings = settings_factory(RoomsSettings, **store)
    clock = ManualClock()
    async with running(build(settings, clock=clock), settings) as service:
        yield {"service": service, "clock": clock, "settings": settings}


async def call(broker: NatsBroker, verb: str, payload: Any) -> Any:
    reply = await request(broker, "rooms", verb, payload, timeout=10)
    return reply


async def create(broker: NatsBroker, **fields: Any) -> dict[str, Any]:
    reply = await call(broker, "create", cmd.CreateRoom(request=CreateRoomRequest(**fields)))
    assert reply.ok, reply.error
    return reply.result  # type: ignore[no-any-return]


async def test_created_room_is_returned_and_published_once(
    rooms: dict[str, Any], client_broker: NatsBroker, nats_server: Any
) -> None:
    room = await create(client_broker, roomName="Équipe Démo-1")
    assert room["roomId"].startswith("equipe_demo_1-")
    got = await call(client_broker, "get", {"roomId": room["roomId"]})
    assert got.ok and got.result["roomName"] == "Équipe Démo-1"
    events = await wait_for(lambda: _events_of(nats_server.url, "RoomCreated"), timeout=10)
    assert [e["subject_id"] for e in events] == [room["roomId"]]
    assert events[0]["data"]["room"]["anonymous"]["moderator"]["secretSha256"]
    assert "secret" not in events[0]["data"]["room"]["anonymous"]["moderator"]


async def _events_of(url: str, event_type: str) -> list[dict[str, Any]]:
    return [e for e in await stream_events(url, idle=0.2) if e["type"] == event_type]


async def test_list_filters_sorts_and_pages_without_gaps_or_repeats(
    rooms: dict[str, Any], client_broker: NatsBroker
) -> None:
    clock: ManualClock = rooms["clock"]
    created = []
    for i in range(7):
        clock.advance(1000)
        created.append(await create(client_broker, roomName=f"alpha {i}"))
    await create(client_broker, roomName="beta")
    seen: list[str] = []
    token = None
    while True:
        reply = await call(
            client_broker,
            "list",
            cmd.ListRooms(
                roomName="ALPHA",
                roomNameMatchMode="prefix",
                roomNameCaseInsensitive=True,
                maxItems=3,
                nextPageToken=token,
                sortOrder="asc",
            ),
        )
        assert reply.ok, reply.error
        seen += [r["roomId"] for r in reply.result["items"]]
        token = reply.result["nextPageToken"]
        if token is None:
            break
    assert seen == [r["roomId"] for r in created]
    by_name = await call(
        client_broker, "list", cmd.ListRooms(sortField="roomName", sortOrder="desc", maxItems=100)
    )
    assert by_name.result["items"][0]["roomName"] == "beta"


async def test_closed_rooms_are_filtered_by_status(
    rooms: dict[str, Any], client_broker: NatsBroker
) -> None:
    a = await create(client_broker, roomName="a")
    await create(client_broker, roomName="b")
    reply = await call(client_broker, "update_status", {"roomId": a["roomId"], "status": "closed"})
    assert reply.ok and reply.result["status"] == "closed"
    closed = await call(client_broker, "list", {"status": "closed"})
    assert [r["roomId"] for r in closed.result["items"]] == [a["roomId"]]


async def test_bad_page_token_is_an_invalid_error_naming_the_field(
    rooms: dict[str, Any], client_broker: NatsBroker
) -> None:
    reply = await call(client_broker, "list", {"nextPageToken": "garbage!!"})
    assert not reply.ok
    assert reply.error.kind == "invalid"
    assert reply.error.details[0].field == "nextPageToken"


async def test_config_roles_access_updates_are_merged_and_validated(
    rooms: dict[str, Any], client_broker: NatsBroker
) -> None:
    room = await create(client_broker)
    ok = await call(
        client_broker,
        "update_config",
        {"roomId": room["roomId"], "config": {"chat": {"enabled": False}}},
    )
    assert ok.ok and ok.result["config"]["chat"]["enabled"] is False
    assert ok.result["config"]["recording"]["enabled"] is True
    # v3.8.0: turning e2ee on switches recording off (egress cannot decrypt the media).
    e2ee = await call(
        client_broker,
        "update_config",
        {"roomId": room["roomId"], "config": {"e2ee": {"enabled": True}}},
    )
    assert e2ee.ok and e2ee.result["config"]["e2ee"]["enabled"] is True
    assert e2ee.result["config"]["recording"]["enabled"] is False
    roles = await call(
        client_broker,
        "update_roles",
        {"roomId": room["roomId"], "roles": {"speaker": {"canRecord": True}}},
    )
    assert roles.result["roles"]["speaker"]["permissions"]["canRecord"] is True
    old_secret = room["anonymous"]["speaker"]["secret"]
    access = await call(
        client_broker,
        "update_access",
        {"roomId": room["roomId"], "access": {"regenerate": ["speaker"]}},
    )
    assert access.result["anonymous"]["speaker"]["secret"] != old_secret
    assert (
        access.result["anonymous"]["moderator"]["secret"]
        == room["anonymous"]["moderator"]["secret"]
    )


async def test_delete_policies_follow_openvidu_semantics(
    rooms: dict[str, Any], client_broker: NatsBroker
) -> None:
    recordings = RecordingsStandIn()
    await recordings.attach(client_broker)
    plain = await create(client_broker)
    deleted = await call(client_broker, "delete", {"roomId": plain["roomId"]})
    assert deleted.ok and deleted.result["successCode"] == "room_deleted"
    gone = await call(client_broker, "get", {"roomId": plain["roomId"]})
    assert gone.error.kind == "not_found"

    kept = await create(client_broker)
    recordings.rooms_with_recordings.add(kept["roomId"])
    refused = await call(client_broker, "delete", {"roomId": kept["roomId"]})
    assert refused.error.error == "room_has_recordings" and refused.error.kind == "conflict"
    closed = await call(
        client_broker, "delete", {"roomId": kept["roomId"], "withRecordings": "close"}
    )
    assert closed.result["successCode"] == "room_closed"
    assert closed.result["room"]["status"] == "closed"
    forced = await call(
        client_broker, "delete", {"roomId": kept["roomId"], "withRecordings": "force"}
    )
    assert forced.result["successCode"] == "room_and_recordings_deleted"


async def test_bulk_delete_reports_each_room(
    rooms: dict[str, Any], client_broker: NatsBroker
) -> None:
    recordings = RecordingsStandIn()
    await recordings.attach(client_broker)
    a = await create(client_broker)
    b = await create(client_broker)
    recordings.rooms_with_recordings.add(b["roomId"])
    reply = await call(
        client_broker, "bulk_delete", {"roomIds": [a["roomId"], b["roomId"], "missing-x"]}
    )
    outcomes = {o["roomId"]: o for o in reply.result}
    assert outcomes[a["roomId"]]["successCode"] == "room_deleted"
    assert outcomes[b["roomId"]]["error"] == "room_has_recordings"
    assert outcomes["missing-x"]["error"] == "room_not_found"


async def test_history_pages_through_every_domain_event(
    rooms: dict[str, Any], client_broker: NatsBroker
) -> None:
    room = await create(client_broker)
    for i in range(4):
        await call(
            client_broker,
            "update_settings",
            {"roomId": room["roomId"], "settings": {"roomName": f"n{i}"}},
        )
    first = await call(client_broker, "history", {"roomId": room["roomId"], "maxItems": 3})
    second = await call(
        client_broker,
        "history",
        {"roomId": room["roomId"], "maxItems": 3, "nextPageToken": first.result["nextPageToken"]},
    )
    types = [e["type"] for e in first.result["items"] + second.result["items"]]
    assert types == ["Created", "Renamed", "Renamed", "Renamed", "Renamed"]
    assert second.result["nextPageToken"] is None


async def test_meeting_events_are_consumed_once_and_drive_status(
    rooms: dict[str, Any], client_broker: NatsBroker, nats_server: Any
) -> None:
    import uuid

    from contracts.events import MeetingStarted, make_envelope, subject_of

    room = await create(client_broker)
    envelope = make_envelope(
        uuid.uuid4(),
        MeetingStarted(meetingId="m1", roomId=room["roomId"], startedAt=1),
        source="meetings",
        subject_id="m1",
    )
    js = client_broker._connection.jetstream()  # type: ignore[union-attr]
    body = envelope.model_dump_json().encode()
    # The same event twice, outside any dedup id: the consumer must apply it once.
    await js.publish(subject_of("MeetingStarted"), body)
    await js.publish(subject_of("MeetingStarted"), body)

    async def active() -> bool:
        reply = await call(client_broker, "get", {"roomId": room["roomId"]})
        return bool(reply.result["status"] == "active_meeting")

    await wait_for(active)
    history = await call(client_broker, "history", {"roomId": room["roomId"]})
    assert [e["type"] for e in history.result["items"]].count("MeetingActivated") == 1


async def test_projection_is_rebuilt_from_the_event_log(
    settings_factory: Any, store: dict[str, str], client_broker: NatsBroker
) -> None:
    settings = settings_factory(RoomsSettings, **store)
    async with running(build(settings), settings):
        ids = {(await create(client_broker, roomName=f"r{i}"))["roomId"] for i in range(5)}
    from services.rooms.projection import RoomsView
    from services.runtime.store import view_engine

    view = RoomsView(view_engine(settings, "rooms"))
    view.reset()
    view.engine.dispose()
    async with running(build(settings), settings):

        async def listed() -> set[str]:
            reply = await call(client_broker, "list", {"maxItems": 100})
            return {r["roomId"] for r in reply.result["items"]}

        assert await wait_for(lambda: _equals(listed, ids)) is True


async def _equals(fetch: Any, expected: set[str]) -> bool:
    return bool(await fetch() == expected)


async def test_outbox_resumes_after_restart_without_duplicates(
    settings_factory: Any, store: dict[str, str], client_broker: NatsBroker, nats_server: Any
) -> None:
    # JetStream's duplicate window would hide a second publish from the stream, so count
    # what the outbox sent: each publish acknowledgement says whether it was a duplicate.
    def published(duplicate: bool) -> float:
        labels = {"service": "rooms", "duplicate": str(duplicate).lower()}
        return REGISTRY.get_sample_value("meetplane_outbox_published_total", labels) or 0.0

    first, again = published(False), published(True)
    settings = settings_factory(RoomsSettings, **store)
    async with running(build(settings), settings):
        for i in range(3):
            await create(client_broker, roomName=f"r{i}")
    async with running(build(settings), settings):
        await create(client_broker, roomName="after restart")
    events = await stream_events(nats_server.url)
    ids = [e["id"] for e in events]
    assert len(ids) == len(set(ids)) == 4
    assert published(False) - first == 4
    assert published(True) - again == 0, "the restarted outbox published old events again"


async def _count(url: str, n: int) -> bool:
    return len(await stream_events(url, idle=0.2)) >= n
