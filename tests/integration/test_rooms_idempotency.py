"""Idempotent room commands: a retried create or delete changes nothing twice."""

from __future__ import annotations

from typing import Any

from faststream.nats import NatsBroker

from contracts.commands import rooms as cmd
from contracts.rooms import CreateRoomRequest
from services.rooms.main import build
from services.rooms.settings import RoomsSettings
from services.runtime.rpc import request
from tests.integration.test_rooms_service import RecordingsStandIn
from tests.support.services import running, stream_events, wait_for


async def test_retried_create_and_delete_apply_once(
    settings_factory: Any, store: dict[str, str], client_broker: NatsBroker, nats_server: Any
) -> None:
    settings = settings_factory(RoomsSettings, **store)
    await RecordingsStandIn().attach(client_broker)
    async with running(build(settings), settings):
        create = cmd.CreateRoom(request=CreateRoomRequest(roomName="retry me"), commandId="c-1")
        first = await request(client_broker, "rooms", "create", create)
        second = await request(client_broker, "rooms", "create", create)
        assert first.ok and second.ok
        assert first.result["roomId"] == second.result["roomId"]
        other = await request(
            client_broker,
            "rooms",
            "create",
            cmd.CreateRoom(request=CreateRoomRequest(roomName="retry me"), commandId="c-2"),
        )
        assert other.result["roomId"] != first.result["roomId"]

        delete = cmd.DeleteRoom(roomId=first.result["roomId"], commandId="d-1")
        gone = await request(client_broker, "rooms", "delete", delete)
        again = await request(client_broker, "rooms", "delete", delete)
        assert gone.result["successCode"] == again.result["successCode"] == "room_deleted"
        stranger = await request(
            client_broker,
            "rooms",
            "delete",
            cmd.DeleteRoom(roomId=first.result["roomId"], commandId="d-2"),
        )
        assert stranger.error.kind == "not_found"

        room_id = first.result["roomId"]

        async def settled() -> bool:
            events = [
                e
                for e in await stream_events(nats_server.url, idle=0.2)
                if e["subject_id"] == room_id
            ]
            return [e["type"] for e in events] == ["RoomCreated", "RoomDeleted"]

        await wait_for(settled)
