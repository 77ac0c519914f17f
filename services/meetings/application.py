"""The meetings Application: load, call, save, return plain values.

Concurrent writers on one aggregate conflict in the event store (optimistic
concurrency); `_retrying` reloads and tries again, so the loser of a race for
the first join of a room simply joins the meeting the winner started.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import Tracking

from services.meetings.domain import (
    InvalidSecret,
    JoinRefused,
    KnownRoom,
    Meeting,
    MeetingConflict,
    MeetingNotFound,
    RoomClosed,
    RoomNotFound,
    RoomOccupancy,
    known_room_id,
    meeting_aggregate_id,
    occupancy_id,
)
from services.runtime.clock import Clock, SystemClock
from services.runtime.logging import get_logger
from services.runtime.store import ServiceApplication, UnitOfWork

if TYPE_CHECKING:
    from services.runtime.consumer import Consumed

log = get_logger("meetplane.meetings")

T = TypeVar("T")


def participant_identity(name: str) -> str:
    """The identity of a participant name: its slug, stable across rejoins.

    Stable so that an evicted participant cannot come back under the same name
    and a name is present at most once in a meeting.
    """
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    slug = re.sub(r"[^a-z0-9]+", "_", folded).strip("_")[:40]
    if not slug:
        slug = "p_" + hashlib.sha256(name.encode()).hexdigest()[:12]
    return slug


def meeting_view(meeting: Meeting) -> dict[str, Any]:
    """The wire shape of a meeting."""
    return {
        "meetingId": meeting.meeting_id,
        "roomId": meeting.room_id,
        "startedAt": meeting.started_at,
        "endedAt": meeting.ended_at,
        "endReason": meeting.end_reason,
        "status": "active" if meeting.active else "ended",
        "participants": list(meeting.participants.values()),
        "evicted": list(meeting.evicted),
    }


class MeetingsApplication(ServiceApplication):
    """Meeting commands and queries over the meetings event store."""

    name = "meetings"
    snapshotting_intervals = {Meeting: 100, KnownRoom: 100}

    def __init__(self, env: dict[str, str] | None = None, clock: Clock | None = None) -> None:
        super().__init__(env)
        self.clock: Clock = clock or SystemClock()

    # ---- loading -----------------------------------------------------------------

    def _occupancy(self, room_id: str) -> RoomOccupancy | None:
        try:
            return cast(RoomOccupancy, self.repository.get(occupancy_id(room_id)))
        except AggregateNotFoundError:
            return None

    def _meeting(self, meeting_id: str) -> Meeting:
        return cast(Meeting, self.repository.get(meeting_aggregate_id(meeting_id)))

    def live_meeting(self, room_id: str) -> Meeting | None:
        """The room's live meeting, if any."""
        occupancy = self._occupancy(room_id)
        if occupancy is None or occupancy.active_meeting_id is None:
            return None
        return self._meeting(occupancy.active_meeting_id)

    def _require_live(self, room_id: str) -> Meeting:
        meeting = self.live_meeting(room_id)
        if meeting is None:
            raise MeetingNotFound(f"room '{room_id}' has no live meeting")
        return meeting

    def _retrying(self, action: Callable[[], T]) -> T:
        return self.retry_on_conflict(action, attempts=20)

    def known_room(self, room_id: str) -> KnownRoom:
        """What the room events said of this room; RoomNotFound if none or deleted.

        For reading only: the cached object itself, not a copy (commands read a
        room's links, roles and status; only consumed room events change it, and
        they load their own copy through the unit of work).
        """
        try:
            room = cast(
                KnownRoom,
                self.repository.get(known_room_id(room_id), deepcopy_from_cache=False),
            )
        except AggregateNotFoundError:
            raise RoomNotFound(f"room '{room_id}' does not exist") from None
        if room.deleted:
            raise RoomNotFound(f"room '{room_id}' does not exist")
        return room

    # ---- commands -----------------------------------------------------------------

    def admit(
        self,
        room_id: str,
        secret: str,
        name: str,
        command_id: str | None = None,
        owner_state: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Check a room link and join with its role: the join command, in one call.

        `owner_state` is the room as its owner (the rooms service) answered it, used
        when this service's view of the rooms is behind (its consumer is catching up).
        """
        room = (
            self.known_room(room_id)
            if owner_state is None
            else KnownRoom(room_id=room_id, state=owner_state)  # read, never saved
        )
        role = room.role_for(secret)
        if role is None:
            raise InvalidSecret("invalid room link")
        if not room.accepts_participants:
            raise RoomClosed(f"room '{room_id}' is closed")
        permissions = room.permissions(role)
        if not permissions.get("canJoinMeeting", True):
            raise JoinRefused("this role may not join meetings", error="join_not_permitted")
        joined = self.join(room_id, name.strip(), role, command_id)
        return {**joined, "role": role, "permissions": permissions}

    def admit_member(
        self,
        room_id: str,
        name: str,
        role: str,
        permissions: dict[str, bool],
        identity: str | None = None,
        reconnect: bool = False,
        command_id: str | None = None,
    ) -> dict[str, Any]:
        """Join with a role and permissions the gateway vouches for (room member tokens).

        A participant already present under `identity` (a token regenerated while
        connected) is answered without a new join; `reconnect` requires that.
        """
        room = self.known_room(room_id)
        if not room.accepts_participants:
            raise RoomClosed(f"room '{room_id}' is closed")
        if not permissions.get("canJoinMeeting", True):
            raise JoinRefused("this role may not join meetings", error="join_not_permitted")
        meeting = self.live_meeting(room_id)
        present = meeting is not None and bool(
            identity and meeting.participants.get(identity, {}).get("present")
        )
        if present:
            assert meeting is not None and identity is not None
            return {"meetingId": meeting.meeting_id, "identity": identity, "started": False}
        if reconnect:
            raise MeetingNotFound(
                f"Participant '{identity}' not found in room '{room_id}'",
                error="participant_not_found",
            )
        return self.join(room_id, name.strip(), role, command_id, identity)

    def join(
        self,
        room_id: str,
        name: str,
        role: str,
        command_id: str | None = None,
        identity: str | None = None,
    ) -> dict[str, Any]:
        """Join the room's live meeting, starting one if none is live (idempotent by command id).

        The identity is the name's slug unless the caller brings one (a room member's).
        """
        identity = identity or participant_identity(name)

        def attempt() -> dict[str, Any]:
            now = self.clock.now_ms()
            occupancy = self._occupancy(room_id) or RoomOccupancy(room_id=room_id)
            started = occupancy.active_meeting_id is None
            if started:
                meeting = Meeting(meeting_id=uuid.uuid4().hex, room_id=room_id, started_at=now)
                occupancy.start(meeting.meeting_id)
            else:
                assert occupancy.active_meeting_id is not None
                meeting = self._meeting(occupancy.active_meeting_id)
                if meeting.joined_by(identity, command_id):
                    return {"meetingId": meeting.meeting_id, "identity": identity, "started": False}
            meeting.join(identity, name, role, now, command_id)
            # Occupancy and meeting commit together: a lost race rolls back both.
            self.save(occupancy, meeting) if started else self.save(meeting)
            return {"meetingId": meeting.meeting_id, "identity": identity, "started": started}

        return self._retrying(attempt)

    def leave(self, room_id: str, identity: str, tracking: Tracking | None = None) -> bool:
        """A participant left (API or webhook); False if nothing changed."""

        def attempt() -> bool:
            meeting = self.live_meeting(room_id)
            changed = meeting is not None and meeting.leave(identity, self.clock.now_ms())
            self._save(meeting if changed else None, tracking)
            return changed

        return self._retrying(attempt)

    def change_role(self, room_id: str, identity: str, role: str) -> dict[str, Any]:
        """Make a participant moderator or speaker (LiveKit follows, see `media_effect`)."""

        def attempt() -> dict[str, Any]:
            meeting = self._require_live(room_id)
            meeting.change_role(identity, role, self.known_room(room_id).permissions(role))
            self.save(meeting)
            return cast(dict[str, Any], meeting.participants[identity])

        return self._retrying(attempt)

    def evict(self, room_id: str, identity: str) -> None:
        """Remove a participant for the rest of the meeting."""

        def attempt() -> None:
            meeting = self._require_live(room_id)
            meeting.evict(identity, self.clock.now_ms())
            self.save(meeting)

        self._retrying(attempt)

    def end(
        self,
        room_id: str,
        reason: str,
        tracking: Tracking | None = None,
        meeting_id: str | None = None,
    ) -> str | None:
        """End the room's live meeting; returns its id, None if there was none."""

        def attempt() -> str | None:
            occupancy = self._occupancy(room_id)
            live = occupancy.active_meeting_id if occupancy else None
            if occupancy is None or live is None or (meeting_id and live != meeting_id):
                self._save(None, tracking)
                return None
            meeting = self._meeting(live)
            meeting.end(reason, self.clock.now_ms())
            occupancy.finish(live)
            self._save_all([occupancy, meeting], tracking)
            return live

        return self._retrying(attempt)

    def end_if_idle(self, room_id: str, meeting_id: str, idle_ms: int) -> bool:
        """End a meeting that has been empty for `idle_ms` (re-checked on the aggregate)."""
        meeting = self.live_meeting(room_id)
        if meeting is None or meeting.meeting_id != meeting_id or meeting.empty_since is None:
            return False
        if self.clock.now_ms() - meeting.empty_since < idle_ms:
            return False
        return self.end(room_id, "empty_timeout", meeting_id=meeting_id) is not None

    # ---- room events (one consumed batch at a time) --------------------------------

    def react(self, uow: UnitOfWork, consumed: Consumed) -> None:
        """Record a room event; a room closed with `endMeeting`, or deleted, ends its meeting."""
        envelope, data = consumed.envelope, consumed.envelope.data
        if envelope.type in ("RoomCreated", "RoomUpdated"):
            state = data["room"]
            room_key = known_room_id(state["roomId"])
            room = (
                uow.get_for_create(room_key)
                if envelope.type == "RoomCreated"
                else uow.get(room_key)
            )
            if room is None:
                uow.add(KnownRoom(room_id=state["roomId"], state=state))
            else:
                room.record(state)
            return
        room_id = str(data["roomId"])
        room = uow.get(known_room_id(room_id))
        if envelope.type == "RoomStatusChanged":
            if room is not None:
                room.set_closed(data["status"] == "closed")
            if data.get("endMeeting"):
                automatic = str(data.get("reason", "")).startswith("auto_deletion")
                self._end_in(uow, room_id, "auto_deleted" if automatic else "room_closed")
        elif envelope.type == "RoomDeleted":
            if room is not None:
                room.delete()
            # when_meeting_ends: the room was deleted because its meeting already ended.
            reason = "auto_deleted" if data.get("reason") == "auto_deletion" else "room_deleted"
            self._end_in(uow, room_id, reason)

    def _end_in(self, uow: UnitOfWork, room_id: str, reason: str) -> None:
        occupancy = uow.get(occupancy_id(room_id))
        live = occupancy.active_meeting_id if occupancy is not None else None
        if occupancy is None or live is None:
            return
        meeting = uow.get(meeting_aggregate_id(live))
        if meeting is not None and meeting.end(reason, self.clock.now_ms()):
            log.info("meeting.ended", room_id=room_id, meeting_id=live, reason=reason)
        occupancy.finish(live)

    def _save(self, meeting: Meeting | None, tracking: Tracking | None) -> None:
        self._save_all([meeting] if meeting else [], tracking)

    def _save_all(self, aggregates: list[Any], tracking: Tracking | None) -> None:
        if tracking is None:
            if aggregates:
                self.save(*aggregates)
        else:
            self.save_tracked(*aggregates, tracking=tracking)

    # ---- queries ------------------------------------------------------------------

    def current(self, room_id: str) -> dict[str, Any]:
        """The live meeting with its participants."""
        return meeting_view(self._require_live(room_id))

    def confirm_presence(
        self, room_id: str, identity: str, tracking: Tracking | None = None
    ) -> bool:
        """LiveKit says a known participant is connected: present again if they had left."""

        def attempt() -> bool:
            meeting = self.live_meeting(room_id)
            participant = meeting.participants.get(identity) if meeting else None
            changed = False
            returning = (
                meeting is not None
                and participant is not None
                and not participant["present"]
                and identity not in meeting.evicted
            )
            if returning:
                assert meeting is not None and participant is not None
                meeting.join(
                    identity, participant["name"], participant["role"], self.clock.now_ms()
                )
                changed = True
            self._save(meeting if changed else None, tracking)
            return changed

        return self._retrying(attempt)

    def is_evicted(self, room_id: str, identity: str) -> bool:
        """Whether this identity was removed from the live meeting."""
        meeting = self.live_meeting(room_id)
        return meeting is not None and identity in meeting.evicted

    def load(self, aggregate: uuid.UUID, version: int | None = None) -> Any:
        """Any aggregate of this service at a version (outbox)."""
        return self.repository.get(aggregate, version=version)


__all__ = ["MeetingConflict", "MeetingsApplication", "meeting_view"]
