"""Thin entrypoints of the rooms service: NATS commands and consumed events."""

from __future__ import annotations

import asyncio
from typing import Any

from faststream.nats import NatsBroker

from contracts.commands import ErrorCode, Page
from contracts.commands import rooms as cmd
from contracts.events import aggregate_subjects
from contracts.rooms import RoomRecord
from services.rooms.application import RoomsApplication
from services.rooms.domain import InvalidRoomRequest, RoomConflict, RoomNotFound
from services.rooms.projection import RoomsView
from services.runtime.commands import CommandRouter
from services.runtime.consumer import Consumed, durable_consumer
from services.runtime.logging import get_logger
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
        broker: NatsBroker,
        command_timeout: float = 5.0,
    ) -> None:
        self.app = app
        self.view = view
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
        record = await asyncio.to_thread(
            self.app.create_room, request.request, request.commandId, request.owner
        )
        log.info("room.created", room_id=record.roomId)
        return record

    async def get(self, request: cmd.GetRoom) -> RoomRecord:
        return await asyncio.to_thread(self.app.get_room, request.roomId)

    async def list_rooms(self, request: cmd.ListRooms) -> Page:
        items, token = await asyncio.to_thread(self.view.list, request)
        return Page(
            items=items,
            nextPageToken=token,
            isTruncated=token is not None,
            maxItems=request.maxItems,
        )

    async def update_config(self, request: cmd.UpdateRoomConfig) -> RoomRecord:
        return await asyncio.to_thread(self.app.update_config, request.roomId, request.config)

    async def update_settings(self, request: cmd.UpdateRoomSettings) -> RoomRecord:
        return await asyncio.to_thread(self.app.update_settings, request.roomId, request.settings)

    async def update_status(self, request: cmd.UpdateRoomStatus) -> RoomRecord:
        record = await asyncio.to_thread(self.app.update_status, request.roomId, request.status)
        log.info("room.status_changed", room_id=request.roomId, status=request.status)
        return record

    async def update_roles(self, request: cmd.UpdateRoomRoles) -> RoomRecord:
        return await asyncio.to_thread(self.app.update_roles, request.roomId, request.roles)

    async def update_access(self, request: cmd.UpdateRoomAccess) -> RoomRecord:
        return await asyncio.to_thread(self.app.update_access, request.roomId, request.access)

    async def delete(self, request: cmd.DeleteRoom) -> cmd.DeleteRoomResult:
        has_recordings = False
        if await asyncio.to_thread(self.app.room_exists, request.roomId):
            has_recordings = await self.has_recordings(request.roomId)
        result = await asyncio.to_thread(
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
        entries = await asyncio.to_thread(
            self.app.history, request.roomId, after, request.maxItems + 1
        )
        page = entries[: request.maxItems]
        more = len(entries) > request.maxItems
        return Page(
            items=[e.model_dump(mode="json") for e in page],
            nextPageToken=str(page[-1].version) if more else None,
            isTruncated=more,
            maxItems=request.maxItems,
        )

    # ---- consumed events ------------------------------------------------------------

    async def on_meeting_event(self, consumed: Consumed) -> None:
        envelope = consumed.envelope
        data: dict[str, Any] = envelope.data
        if envelope.type == "MeetingStarted":
            await asyncio.to_thread(
                self.app.meeting_started, data["roomId"], data["meetingId"], consumed.tracking
            )
        elif envelope.type == "MeetingEnded":
            pending = await asyncio.to_thread(
                self.app.pending_after_meeting, data["roomId"], data["meetingId"]
            )
            has_recordings = False
            if pending and "close" not in pending:
                has_recordings = await self.has_recordings(data["roomId"])
            await asyncio.to_thread(
                self.app.meeting_ended,
                data["roomId"],
                data["meetingId"],
                has_recordings,
                consumed.tracking,
            )

    async def on_janitor_event(self, consumed: Consumed) -> None:
        envelope = consumed.envelope
        if envelope.type != "RoomAutoDeletionDue":
            return
        room_id = envelope.data["roomId"]
        if not await asyncio.to_thread(self.app.room_exists, room_id):
            return
        has_recordings = await self.has_recordings(room_id)
        code = await asyncio.to_thread(
            self.app.auto_deletion_due,
            room_id,
            envelope.data["autoDeletionDate"],
            has_recordings,
            consumed.tracking,
        )
        log.info("room.auto_deletion", room_id=room_id, success_code=code)

    # ---- wiring -----------------------------------------------------------------------

    def register(self) -> None:
        self.router = CommandRouter(self.broker, cmd.SERVICE, ERRORS)
        r = self.router
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
        durable_consumer(
            self.broker,
            name="rooms-meeting-events",
            subject=aggregate_subjects("meeting"),
            handler=self.on_meeting_event,
            processed=self.app,
        )
        durable_consumer(
            self.broker,
            name="rooms-janitor-events",
            subject=aggregate_subjects("janitor"),
            handler=self.on_janitor_event,
            processed=self.app,
        )
