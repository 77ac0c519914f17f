"""Thin entrypoints of the rooms service: NATS commands and consumed events."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from eventsourcing.persistence import Tracking
from faststream.nats import NatsBroker

from contracts.commands import ErrorCode, Page
from contracts.commands import rooms as cmd
from contracts.events import subject_of
from contracts.rooms import RoomRecord
from services.rooms.application import RoomsApplication
from services.rooms.domain import InvalidRoomRequest, RoomConflict, RoomNotFound
from services.rooms.projection import RoomsView
from services.runtime.commands import CommandRouter
from services.runtime.consumer import Consumed
from services.runtime.logging import get_logger
from services.runtime.projection import Projection
from services.runtime.rpc import call

log = get_logger("meetplane.rooms")

ERRORS: dict[type[Exception], ErrorCode] = {
    RoomNotFound: ErrorCode.NOT_FOUND,
    RoomConflict: ErrorCode.CONFLICT,
    InvalidRoomRequest: ErrorCode.INVALID,
}


class RoomsHandlers:
    """Binds the rooms application to NATS."""

    def __init__(
        self,
        app: RoomsApplication,
        view: RoomsView,
        projection: Projection,
        broker: NatsBroker,
        command_timeout: float = 5.0,
    ) -> None:
        self.app = app
        self.view = view
        self.projection = projection
        self.broker = broker
        self.timeout = command_timeout

    async def has_recordings(self, room_id: str) -> bool:
        """Ask the recordings service (it owns that data)."""
        result = await call(
            self.broker,
            "recordings",
            "room_has_recordings",
            {"roomId": room_id},
            timeout=self.timeout,
        )
        return bool(result["hasRecordings"])

    # ---- commands ----------------------------------------------------------------

    async def create(self, request: cmd.CreateRoom) -> RoomRecord:
        record = await self.app.call(
            self.app.create_room, request.request, request.commandId, request.owner
        )
        log.info("room.created", room_id=record.roomId)
        return record

    async def get(self, request: cmd.GetRoom) -> RoomRecord:
        return await self.app.call(self.app.get_room, request.roomId)

    async def list_rooms(self, request: cmd.ListRooms) -> Page:
        await self.projection.wait_caught_up()  # a list shows every room created before it
        items, token = await self.app.call(self.view.list, request)
        return Page(
            items=items,
            nextPageToken=token,
            isTruncated=token is not None,
            maxItems=request.maxItems,
        )

    async def update_config(self, request: cmd.UpdateRoomConfig) -> RoomRecord:
        return await self.app.call(self.app.update_config, request.roomId, request.config)

    async def update_settings(self, request: cmd.UpdateRoomSettings) -> RoomRecord:
        return await self.app.call(self.app.update_settings, request.roomId, request.settings)

    async def update_status(self, request: cmd.UpdateRoomStatus) -> RoomRecord:
        record = await self.app.call(self.app.update_status, request.roomId, request.status)
        log.info("room.status_changed", room_id=request.roomId, status=request.status)
        return record

    async def update_roles(self, request: cmd.UpdateRoomRoles) -> RoomRecord:
        return await self.app.call(self.app.update_roles, request.roomId, request.roles)

    async def update_access(self, request: cmd.UpdateRoomAccess) -> RoomRecord:
        return await self.app.call(self.app.update_access, request.roomId, request.access)

    async def delete(self, request: cmd.DeleteRoom) -> cmd.DeleteRoomResult:
        has_recordings = False
        if await self.app.call(self.app.room_exists, request.roomId):
            has_recordings = await self.has_recordings(request.roomId)
        result = await self.app.call(
            self.app.delete_room,
            request.roomId,
            request.withMeeting.value,
            request.withRecordings.value,
            has_recordings,
            "admin",
            None,
            request.commandId,
        )
        log.info("room.delete", room_id=request.roomId, success_code=result.successCode)
        return result

    async def bulk_delete(self, request: cmd.BulkDeleteRooms) -> list[cmd.BulkDeleteOutcome]:
        outcomes: list[cmd.BulkDeleteOutcome] = []
        for room_id in dict.fromkeys(request.roomIds):
            one = cmd.DeleteRoom(
                roomId=room_id,
                withMeeting=request.withMeeting,
                withRecordings=request.withRecordings,
                commandId=f"{request.commandId}:{room_id}" if request.commandId else None,
            )
            reply = await self.router.dispatch(
                "delete", cmd.DeleteRoom, self.delete, one.model_dump()
            )
            if reply.ok:
                outcomes.append(
                    cmd.BulkDeleteOutcome(
                        roomId=room_id,
                        **{k: reply.result[k] for k in ("successCode", "message", "scheduled")},
                    )
                )
            else:
                assert reply.error is not None
                outcomes.append(
                    cmd.BulkDeleteOutcome(
                        roomId=room_id, error=reply.error.error, message=reply.error.message
                    )
                )
        return outcomes

    async def history(self, request: cmd.RoomHistory) -> Page:
        after = 0
        if request.nextPageToken:
            try:
                after = int(request.nextPageToken)
            except ValueError:
                raise InvalidRoomRequest(
                    "nextPageToken is not valid", field="nextPageToken"
                ) from None
        entries = await self.app.call(self.app.history, request.roomId, after, request.maxItems + 1)
        page = entries[: request.maxItems]
        more = len(entries) > request.maxItems
        return Page(
            items=[e.model_dump(mode="json") for e in page],
            nextPageToken=str(page[-1].version) if more else None,
            isTruncated=more,
            maxItems=request.maxItems,
        )

    # ---- consumed events ------------------------------------------------------------

    async def process_events(self, batch: Sequence[Consumed], position: Tracking) -> None:
        """The `rooms-events` consumer: meetings starting and ending, auto-deletions due."""
        rooms: set[str] = set()
        if any(c.envelope.type in ("MeetingEnded", "RoomAutoDeletionDue") for c in batch):
            rooms = await self.app.call(self.app.rooms_to_check_for_recordings, batch)
        checked = await asyncio.gather(*(self.has_recordings(r) for r in rooms))
        has_recordings = dict(zip(rooms, checked, strict=True))
        await self.app.call(
            self.app.process_batch,
            batch,
            position,
            lambda uow, consumed: self.app.react(uow, consumed, has_recordings),
        )

    # ---- wiring -----------------------------------------------------------------------

    def register(self, router: CommandRouter) -> None:
        """Answer the rooms commands on `router`."""
        self.router = router
        r = router
        r.register("create", cmd.CreateRoom, self.create)
        r.register("get", cmd.GetRoom, self.get)
        r.register("list", cmd.ListRooms, self.list_rooms)
        r.register("update_config", cmd.UpdateRoomConfig, self.update_config)
        r.register("update_settings", cmd.UpdateRoomSettings, self.update_settings)
        r.register("update_status", cmd.UpdateRoomStatus, self.update_status)
        r.register("update_roles", cmd.UpdateRoomRoles, self.update_roles)
        r.register("update_access", cmd.UpdateRoomAccess, self.update_access)
        r.register("delete", cmd.DeleteRoom, self.delete)
        r.register("bulk_delete", cmd.BulkDeleteRooms, self.bulk_delete)
        r.register("history", cmd.RoomHistory, self.history)


# What the rooms service consumes: meetings starting and ending, auto-deletions due.
CONSUMED_SUBJECTS = [
    subject_of("MeetingStarted"),
    subject_of("MeetingEnded"),
    subject_of("RoomAutoDeletionDue"),
]
