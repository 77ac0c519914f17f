"""Thin entrypoints of the meetings service: NATS commands and consumed room events."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from typing import Any

from faststream.nats import NatsBroker

from contracts.commands import ErrorCode
from contracts.commands import meetings as cmd
from contracts.events import aggregate_subjects
from services.meetings.application import MeetingsApplication
from services.meetings.domain import JoinRefused, MeetingConflict, MeetingError, MeetingNotFound
from services.meetings.media import LocalMediaBackend, MediaBackend, MediaBackendUnavailable
from services.meetings.projection import MeetingsView
from services.runtime.commands import CommandRouter
from services.runtime.consumer import Consumed, durable_consumer
from services.runtime.logging import get_logger
from services.runtime.rpc import CommandFailed, request

log = get_logger("meetplane.meetings")


class RoomNotFound(MeetingError):
    """No such room (as far as the room events this service consumed say)."""

    error = "room_not_found"


class InvalidSecret(MeetingError):
    """The link secret matches no enabled link of the room (no hint which part is wrong)."""

    error = "invalid_secret"


class RoomClosed(MeetingError):
    """The room takes no new participants."""

    error = "room_closed"


ERRORS: dict[type[Exception], ErrorCode] = {
    RoomNotFound: ErrorCode.NOT_FOUND,
    MeetingNotFound: ErrorCode.NOT_FOUND,
    InvalidSecret: ErrorCode.UNAUTHORIZED,
    RoomClosed: ErrorCode.FORBIDDEN,
    JoinRefused: ErrorCode.FORBIDDEN,
    MeetingConflict: ErrorCode.CONFLICT,
    MeetingError: ErrorCode.INVALID,
    MediaBackendUnavailable: ErrorCode.UNAVAILABLE,
}

# LiveKit's `room_finished` reason -> ours.  An end meetplane asked for (ended by an
# admin, room closed or deleted, empty timeout) is recorded before LiveKit's room is
# deleted, so its webhook finds no live meeting and keeps that reason; these apply to
# ends LiveKit decided or someone else asked for through LiveKit's API.
END_REASON_BY_LIVEKIT = {
    "ROOM_END_IDLE_TIMEOUT": "empty_timeout",
    "ROOM_END_API_DELETE": "ended_by_admin",
    "ROOM_END_SERVER_SHUTDOWN": "media_server_shutdown",
}
END_REASON_LIVEKIT_OTHER = "livekit"  # no reason given, or one we have no name for


def end_reason_of(livekit_reason: str) -> str:
    """Our `MeetingEnded.reason` for a LiveKit `RoomEndReason` name."""
    return END_REASON_BY_LIVEKIT.get(livekit_reason, END_REASON_LIVEKIT_OTHER)


def secret_matches(secret: str, expected_sha256: str) -> bool:
    """Constant-time comparison of a secret with a stored hash."""
    digest = hashlib.sha256(secret.encode()).hexdigest()
    return hmac.compare_digest(digest, expected_sha256)


class MeetingsHandlers:
    """Binds the meetings application to NATS."""

    def __init__(
        self,
        app: MeetingsApplication,
        view: MeetingsView,
        media: MediaBackend,
        broker: NatsBroker,
        room_wait: float = 0.5,
    ) -> None:
        self.app = app
        self.view = view
        self.media = media
        self.broker = broker
        self.room_wait = room_wait

    async def _room(self, room_id: str) -> dict[str, Any]:
        # A join can arrive right after the room was created, before its event
        # reached our read model (or while our consumer fails over): wait a little,
        # then ask the rooms service, which owns the room.
        deadline = asyncio.get_running_loop().time() + self.room_wait
        while True:
            room = await asyncio.to_thread(self.view.room, room_id)
            if room is not None or asyncio.get_running_loop().time() >= deadline:
                break
            await asyncio.sleep(0.05)
        if room is None:
            room = await self._room_from_owner(room_id)
        if room is None or room["deleted"]:
            raise RoomNotFound(f"room '{room_id}' does not exist")
        return room

    async def _room_from_owner(self, room_id: str) -> dict[str, Any] | None:
        reply = await request(self.broker, "rooms", "get", {"roomId": room_id})
        if not reply.ok:
            assert reply.error is not None
            if reply.error.kind == ErrorCode.NOT_FOUND:
                return None
            raise CommandFailed(reply.error)  # passed through unchanged (e.g. 503)
        record = reply.result
        return {
            "room_id": room_id,
            "deleted": False,
            "closed": record["status"] == "closed" or record.get("pendingDeletion", False),
            "roles": record["roles"],
            "anonymous": {
                role: {
                    "enabled": link["enabled"],
                    "secretSha256": hashlib.sha256(link["secret"].encode()).hexdigest(),
                }
                for role, link in record["anonymous"].items()
            },
        }

    # ---- commands -------------------------------------------------------------------------

    async def join(self, request: cmd.JoinMeeting) -> cmd.JoinResult:
        room = await self._room(request.roomId)
        role = next(
            (
                r
                for r in ("moderator", "speaker")
                if room["anonymous"][r]["enabled"]
                and secret_matches(request.secret, room["anonymous"][r]["secretSha256"])
            ),
            None,
        )
        if role is None:
            raise InvalidSecret("invalid room link")
        if room["closed"]:
            raise RoomClosed(f"room '{request.roomId}' is closed")
        permissions: dict[str, bool] = room["roles"][role]["permissions"]
        if not permissions.get("canJoinMeeting", True):
            raise JoinRefused("this role may not join meetings", error="join_not_permitted")
        joined = await asyncio.to_thread(
            self.app.join, request.roomId, request.participantName.strip(), role, request.commandId
        )
        token = await self.media.issue_token(
            request.roomId,
            joined["identity"],
            request.participantName,
            permissions,
            {"role": role, "meetingId": joined["meetingId"], "roomId": request.roomId},
        )
        if isinstance(self.media, LocalMediaBackend):
            self.media.mark_joined(request.roomId, joined["identity"])
        log.info(
            "meeting.joined",
            room_id=request.roomId,
            meeting_id=joined["meetingId"],
            identity=joined["identity"],
            role=role,
            started=joined["started"],
        )
        return cmd.JoinResult(
            url=self.media.settings.livekit_url,
            token=token,
            identity=joined["identity"],
            role=role,
            permissions=permissions,
            meetingId=joined["meetingId"],
            roomId=request.roomId,
        )

    async def get(self, request: cmd.RoomMeeting) -> dict[str, Any]:
        return await asyncio.to_thread(self.app.current, request.roomId)

    async def end(self, request: cmd.RoomMeeting) -> dict[str, Any]:
        meeting_id = await asyncio.to_thread(self.app.end, request.roomId, "ended_by_admin")
        if meeting_id is None:
            raise MeetingNotFound(f"room '{request.roomId}' has no live meeting")
        await self.media.delete_room(request.roomId)
        log.info(
            "meeting.ended", room_id=request.roomId, meeting_id=meeting_id, reason="ended_by_admin"
        )
        return {"meetingId": meeting_id, "reason": "ended_by_admin"}

    async def evict(self, request: cmd.ParticipantRef) -> dict[str, Any]:
        await asyncio.to_thread(self.app.evict, request.roomId, request.identity)
        await self.media.remove_participant(request.roomId, request.identity)
        log.info("meeting.participant_evicted", room_id=request.roomId, identity=request.identity)
        return {"identity": request.identity, "evicted": True}

    async def leave(self, request: cmd.ParticipantRef) -> dict[str, Any]:
        changed = await asyncio.to_thread(self.app.leave, request.roomId, request.identity)
        if not changed:
            raise MeetingNotFound(
                f"'{request.identity}' is not in the meeting", error="participant_not_found"
            )
        if isinstance(self.media, LocalMediaBackend):
            self.media.mark_left(request.roomId, request.identity)
        return {"identity": request.identity, "left": True}

    async def change_role(self, request: cmd.ChangeRole) -> dict[str, Any]:
        participant = await asyncio.to_thread(
            self.app.change_role, request.roomId, request.identity, request.role
        )
        room = await self._room(request.roomId)
        await self.media.update_participant_permissions(
            request.roomId, request.identity, room["roles"][request.role]["permissions"]
        )
        return participant

    async def end_empty(self, request: cmd.EndEmptyMeetings) -> cmd.EndEmptyMeetingsResult:
        empty_before = self.app.clock.now_ms() - request.idleMs
        idle = await asyncio.to_thread(self.view.idle_meetings, empty_before)
        ended = []
        for room_id, meeting_id in idle:
            if await asyncio.to_thread(self.app.end_if_idle, room_id, meeting_id, request.idleMs):
                await self.media.delete_room(room_id)
                ended.append(meeting_id)
                log.info(
                    "meeting.ended", room_id=room_id, meeting_id=meeting_id, reason="empty_timeout"
                )
        return cmd.EndEmptyMeetingsResult(ended=ended, checked=len(idle))

    async def livekit_webhook(self, request: cmd.LiveKitWebhook) -> dict[str, Any]:
        """Apply a LiveKit webhook; every branch is a no-op when replayed."""
        room_id, identity = request.room_name, request.participant_identity
        changed = False
        if request.event == "participant_joined" and identity:
            changed = await asyncio.to_thread(self.app.confirm_presence, room_id, identity)
        elif request.event == "participant_left" and identity:
            changed = await asyncio.to_thread(self.app.leave, room_id, identity)
        elif request.event == "room_finished":
            reason = end_reason_of(request.room_end_reason)
            changed = await asyncio.to_thread(self.app.end, room_id, reason) is not None
        log.info(
            "meeting.livekit_webhook",
            room_id=room_id,
            webhook=request.event,
            webhook_id=request.id,
            changed=changed,
        )
        return {"applied": changed}

    # ---- consumed room events -----------------------------------------------------------

    async def on_room_event(self, consumed: Consumed) -> None:
        envelope = consumed.envelope
        data: dict[str, Any] = envelope.data
        if envelope.type in ("RoomCreated", "RoomUpdated"):
            await asyncio.to_thread(self.view.put_room, data["room"])
        elif envelope.type == "RoomStatusChanged":
            await asyncio.to_thread(
                self.view.set_room_closed, data["roomId"], data["status"] == "closed"
            )
            if data.get("endMeeting"):
                automatic = data["reason"].startswith("auto_deletion")
                reason = "auto_deleted" if automatic else "room_closed"
                await self._end_for_room(data["roomId"], reason, consumed)
        elif envelope.type == "RoomDeleted":
            await asyncio.to_thread(self.view.mark_room_deleted, data["roomId"])
            # when_meeting_ends: the room was deleted because its meeting already ended.
            reason = "auto_deleted" if data["reason"] == "auto_deletion" else "room_deleted"
            await self._end_for_room(data["roomId"], reason, consumed)

    async def _end_for_room(self, room_id: str, reason: str, consumed: Consumed) -> None:
        meeting_id = await asyncio.to_thread(self.app.end, room_id, reason, consumed.tracking)
        if meeting_id is not None:
            await self.media.delete_room(room_id)
            log.info(
                "meeting.ended",
                room_id=room_id,
                meeting_id=meeting_id,
                reason=reason,
                event_id=str(consumed.envelope.id),
            )

    # ---- wiring -----------------------------------------------------------------------------

    def register(self) -> None:
        router = CommandRouter(self.broker, cmd.SERVICE, ERRORS)
        router.register("join", cmd.JoinMeeting, self.join)
        router.register("get", cmd.RoomMeeting, self.get)
        router.register("end", cmd.RoomMeeting, self.end)
        router.register("evict", cmd.ParticipantRef, self.evict)
        router.register("leave", cmd.ParticipantRef, self.leave)
        router.register("change_role", cmd.ChangeRole, self.change_role)
        router.register("end_empty", cmd.EndEmptyMeetings, self.end_empty)
        router.register("livekit_webhook", cmd.LiveKitWebhook, self.livekit_webhook)
        durable_consumer(
            self.broker,
            name="meetings-room-events",
            subject=aggregate_subjects("room"),
            handler=self.on_room_event,
            processed=self.app,
        )
