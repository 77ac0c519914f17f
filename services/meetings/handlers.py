"""Thin entrypoints of the meetings service: NATS commands and consumed room events.

External side effects (LiveKit) are not made here: they follow from the
service's log (`media_effect`, run by `services.runtime.effects.SideEffects`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import Tracking
from faststream.nats import NatsBroker

from contracts.commands import ErrorCode
from contracts.commands import meetings as cmd
from contracts.events import aggregate_subjects
from services.meetings.application import MeetingsApplication
from services.meetings.domain import (
    InvalidSecret,
    JoinRefused,
    Meeting,
    MeetingConflict,
    MeetingError,
    MeetingNotFound,
    RoomClosed,
    RoomNotFound,
)
from services.meetings.media import LocalMediaBackend, MediaBackend, MediaBackendUnavailable
from services.meetings.projection import MeetingsView
from services.runtime.commands import CommandRouter
from services.runtime.consumer import Consumed, DurableConsumer
from services.runtime.effects import Action
from services.runtime.logging import get_logger
from services.runtime.projection import Projection
from services.runtime.rpc import CommandFailed, request

log = get_logger("meetplane.meetings")

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


# What the meetings service consumes: every room event.
CONSUMED_SUBJECTS = [aggregate_subjects("room")]


def media_effect(media: MediaBackend) -> Any:
    """The planner of LiveKit side effects: what each meeting event requires of the media server."""

    def plan(event: Any, state: Any) -> Action | None:
        if not isinstance(state, Meeting):
            return None
        kind, room = type(event).__name__, state.room_id
        if kind == "Ended":
            return lambda: media.delete_room(room)
        if kind == "ParticipantEvicted":
            identity = event.identity
            return lambda: media.remove_participant(room, identity)
        if kind == "ParticipantRoleChanged" and getattr(event, "permissions", None):
            identity, permissions = event.identity, dict(event.permissions)
            return lambda: media.update_participant_permissions(room, identity, permissions)
        return None

    return plan


class MeetingsHandlers:
    """Binds the meetings application to NATS."""

    def __init__(
        self,
        app: MeetingsApplication,
        view: MeetingsView,
        projection: Projection,
        media: MediaBackend,
        broker: NatsBroker,
    ) -> None:
        self.app = app
        self.view = view
        self.projection = projection
        self.media = media
        self.broker = broker
        self.consumer: DurableConsumer | None = None

    async def _rooms_caught_up(self) -> bool:
        """Read-your-writes: every room event already on the stream is applied here."""
        if self.consumer is None:
            return True
        return await self.consumer.caught_up(timeout=3.0)

    async def _room_from_owner(self, room_id: str) -> dict[str, Any] | None:
        """The room as the rooms service has it now (secrets as hashes), None if it is gone.

        Only asked when this service's consumer is behind (a failover, a backlog):
        answering from a stale view could accept a link that was just regenerated,
        or answer 404 for a room created a moment ago.
        """
        reply = await request(self.broker, "rooms", "get", {"roomId": room_id})
        if not reply.ok:
            assert reply.error is not None
            if reply.error.kind == ErrorCode.NOT_FOUND:
                raise RoomNotFound(f"room '{room_id}' does not exist")
            raise CommandFailed(reply.error)
        record = reply.result
        return {
            **record,
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
        def admit(owner_state: dict[str, Any] | None) -> dict[str, Any]:
            return self.app.admit(
                request.roomId,
                request.secret,
                request.participantName,
                request.commandId,
                owner_state,
            )

        owner_state = None
        if not await self._rooms_caught_up():
            owner_state = await self._room_from_owner(request.roomId)
        try:
            joined = await self.app.call(admit, owner_state)
        except RoomNotFound:
            if owner_state is not None:
                raise
            # A room unknown here is confirmed by its owner before the 404: the stream's
            # head can read short while JetStream elects a new stream leader (a node
            # died), and a room created a moment ago would then look missing.
            joined = await self.app.call(admit, await self._room_from_owner(request.roomId))
        role, permissions = joined["role"], joined["permissions"]
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

    async def join_member(self, request: cmd.JoinMember) -> cmd.JoinResult:
        """Admit a room member token holder with the role and permissions the gateway sends."""
        await self._rooms_caught_up()
        joined = await self.app.call(
            self.app.admit_member,
            request.roomId,
            request.participantName,
            request.role,
            request.permissions,
            request.identity,
            request.reconnect,
            request.commandId,
        )
        metadata = {
            **request.metadata,
            "livekitUrl": self.media.settings.livekit_url,
            "role": request.role,
            "meetingId": joined["meetingId"],
            "roomId": request.roomId,
        }
        token = await self.media.issue_token(
            request.roomId,
            joined["identity"],
            request.participantName,
            request.permissions,
            metadata,
        )
        if isinstance(self.media, LocalMediaBackend):
            self.media.mark_joined(request.roomId, joined["identity"])
        log.info(
            "meeting.member_joined",
            room_id=request.roomId,
            meeting_id=joined["meetingId"],
            identity=joined["identity"],
            role=request.role,
            started=joined["started"],
            reconnect=request.reconnect,
        )
        return cmd.JoinResult(
            url=self.media.settings.livekit_url,
            token=token,
            identity=joined["identity"],
            role=request.role,
            permissions=request.permissions,
            meetingId=joined["meetingId"],
            roomId=request.roomId,
        )

    async def get(self, request: cmd.RoomMeeting) -> dict[str, Any]:
        return await self.app.call(self.app.current, request.roomId)

    async def end(self, request: cmd.RoomMeeting) -> dict[str, Any]:
        meeting_id = await self.app.call(self.app.end, request.roomId, "ended_by_admin")
        if meeting_id is None:
            raise MeetingNotFound(f"room '{request.roomId}' has no live meeting")
        log.info(
            "meeting.ended", room_id=request.roomId, meeting_id=meeting_id, reason="ended_by_admin"
        )
        return {"meetingId": meeting_id, "reason": "ended_by_admin"}

    async def evict(self, request: cmd.ParticipantRef) -> dict[str, Any]:
        await self.app.call(self.app.evict, request.roomId, request.identity)
        log.info("meeting.participant_evicted", room_id=request.roomId, identity=request.identity)
        return {"identity": request.identity, "evicted": True}

    async def leave(self, request: cmd.ParticipantRef) -> dict[str, Any]:
        changed = await self.app.call(self.app.leave, request.roomId, request.identity)
        if not changed:
            raise MeetingNotFound(
                f"'{request.identity}' is not in the meeting", error="participant_not_found"
            )
        if isinstance(self.media, LocalMediaBackend):
            self.media.mark_left(request.roomId, request.identity)
        return {"identity": request.identity, "left": True}

    async def change_role(self, request: cmd.ChangeRole) -> dict[str, Any]:
        return await self.app.call(
            self.app.change_role, request.roomId, request.identity, request.role
        )

    async def end_empty(self, request: cmd.EndEmptyMeetings) -> cmd.EndEmptyMeetingsResult:
        empty_before = self.app.clock.now_ms() - request.idleMs
        await self.projection.wait_caught_up()
        idle = await self.app.call(self.view.idle_meetings, empty_before)
        ended = []
        for room_id, meeting_id in idle:
            if await self.app.call(self.app.end_if_idle, room_id, meeting_id, request.idleMs):
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
            changed = await self.app.call(self.app.confirm_presence, room_id, identity)
        elif request.event == "participant_left" and identity:
            changed = await self.app.call(self.app.leave, room_id, identity)
        elif request.event == "room_finished":
            reason = end_reason_of(request.room_end_reason)
            changed = await self.app.call(self.app.end, room_id, reason) is not None
        log.info(
            "meeting.livekit_webhook",
            room_id=room_id,
            webhook=request.event,
            webhook_id=request.id,
            changed=changed,
        )
        return {"applied": changed}

    # ---- consumed room events -----------------------------------------------------------

    async def process_events(self, batch: Sequence[Consumed], position: Tracking) -> None:
        """The `meetings-events` consumer: what rooms become, and the meetings they end."""
        await self.app.call(self.app.process_batch, batch, position, self.app.react)

    # ---- wiring -----------------------------------------------------------------------------

    def register(self, router: CommandRouter) -> None:
        """Answer the meetings commands on `router`."""
        router.register("join", cmd.JoinMeeting, self.join)
        router.register("join_member", cmd.JoinMember, self.join_member)
        router.register("get", cmd.RoomMeeting, self.get)
        router.register("end", cmd.RoomMeeting, self.end)
        router.register("evict", cmd.ParticipantRef, self.evict)
        router.register("leave", cmd.ParticipantRef, self.leave)
        router.register("change_role", cmd.ChangeRole, self.change_role)
        router.register("end_empty", cmd.EndEmptyMeetings, self.end_empty)
        router.register("livekit_webhook", cmd.LiveKitWebhook, self.livekit_webhook)
