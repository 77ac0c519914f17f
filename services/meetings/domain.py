"""Meeting aggregates: invariants and domain events, no I/O.

`RoomOccupancy` (one per room) records which meeting is live; starting a
meeting changes it, so two concurrent first joins conflict on its version in
the event store and only one meeting can start.  `Meeting` (one per room
occupancy) holds participants, roles, evictions and the end.
"""

from __future__ import annotations

import uuid
from typing import Any

from eventsourcing.domain import Aggregate, event

from services.runtime.errors import DomainError

OCCUPANCY_NAMESPACE = uuid.UUID("3f0c6a9d-6a5e-4cf1-9c7f-0f3bdb1a2c55")
MEETING_NAMESPACE = uuid.UUID("8d7b1e64-2f1a-47a3-b8a0-5d8f6a3e9c10")
ROLES = ("moderator", "speaker")


class MeetingError(DomainError):
    """Base of the meetings domain errors; `error` is the API error code."""

    error = "meeting_error"


class MeetingNotFound(MeetingError):
    """No live meeting (or participant) there."""

    error = "meeting_not_found"


class MeetingConflict(MeetingError):
    """The meeting's state forbids it."""

    error = "meeting_conflict"


class JoinRefused(MeetingError):
    """The join is not allowed (evicted, closed room, role cannot join)."""

    error = "join_refused"


def occupancy_id(room_id: str) -> uuid.UUID:
    """Aggregate id of a room's occupancy."""
    return uuid.uuid5(OCCUPANCY_NAMESPACE, room_id)


def meeting_aggregate_id(meeting_id: str) -> uuid.UUID:
    """Aggregate id of a meeting."""
    return uuid.uuid5(MEETING_NAMESPACE, meeting_id)


class RoomOccupancy(Aggregate):
    """Which meeting, if any, is live in a room."""

    @event("Created")
    def __init__(self, room_id: str) -> None:
        self.room_id = room_id
        self.active_meeting_id: str | None = None
        self.meetings = 0

    @classmethod
    def create_id(cls, room_id: str, **_: Any) -> uuid.UUID:
        """One occupancy per room."""
        return occupancy_id(room_id)

    def start(self, meeting_id: str) -> None:
        """Mark a new meeting live; refuses while another is."""
        if self.active_meeting_id is not None:
            raise MeetingConflict("a meeting is already live", error="meeting_already_active")
        self._started(meeting_id=meeting_id)

    @event("MeetingOpened")
    def _started(self, meeting_id: str) -> None:
        self.active_meeting_id = meeting_id
        self.meetings += 1

    def finish(self, meeting_id: str) -> None:
        """The live meeting ended."""
        if self.active_meeting_id == meeting_id:
            self._finished(meeting_id=meeting_id)

    @event("MeetingClosed")
    def _finished(self, meeting_id: str) -> None:
        self.active_meeting_id = None


class Meeting(Aggregate):
    """One live session of a room."""

    @event("Started")
    def __init__(self, meeting_id: str, room_id: str, started_at: int) -> None:
        self.meeting_id = meeting_id
        self.room_id = room_id
        self.started_at = started_at
        self.participants: dict[str, dict[str, Any]] = {}
        self.evicted: list[str] = []
        self.ended_at: int | None = None
        self.end_reason: str | None = None
        self.empty_since: int | None = started_at

    @classmethod
    def create_id(cls, meeting_id: str, **_: Any) -> uuid.UUID:
        """Aggregate ids are derived from meeting ids."""
        return meeting_aggregate_id(meeting_id)

    @property
    def active(self) -> bool:
        """Not ended."""
        return self.ended_at is None

    def present(self) -> list[str]:
        """Identities currently in the meeting."""
        return [i for i, p in self.participants.items() if p["present"]]

    def _require_active(self) -> None:
        if not self.active:
            raise MeetingNotFound("the meeting has ended", error="meeting_not_found")

    def _require_participant(self, identity: str) -> dict[str, Any]:
        participant = self.participants.get(identity)
        if participant is None:
            raise MeetingNotFound(
                f"no participant '{identity}' in this meeting", error="participant_not_found"
            )
        return participant

    def join(
        self, identity: str, name: str, role: str, at: int, command_id: str | None = None
    ) -> None:
        """A participant joins (again, after leaving, with the same identity)."""
        self._require_active()
        if role not in ROLES:
            raise MeetingError(f"unknown role '{role}'", error="invalid_role", field="role")
        if identity in self.evicted:
            raise JoinRefused(
                "this participant was removed from the meeting", error="participant_evicted"
            )
        current = self.participants.get(identity)
        if current is not None and current["present"]:
            raise MeetingConflict(
                f"'{name}' is already in the meeting", error="participant_already_joined"
            )
        self._joined(identity=identity, name=name, role=role, at=at, command_id=command_id)

    def joined_by(self, identity: str, command_id: str | None) -> bool:
        """Whether this present participant joined through this command (a retry)."""
        participant = self.participants.get(identity)
        return bool(
            command_id
            and participant
            and participant["present"]
            and participant.get("commandId") == command_id
        )

    @event("ParticipantJoined")
    def _joined(
        self, identity: str, name: str, role: str, at: int, command_id: str | None = None
    ) -> None:
        self.participants[identity] = {
            "identity": identity,
            "name": name,
            "role": role,
            "joinedAt": at,
            "leftAt": None,
            "present": True,
            "commandId": command_id,
        }
        self.empty_since = None

    def leave(self, identity: str, at: int) -> bool:
        """A participant left; False if they were not present (a replayed webhook)."""
        if not self.active:
            return False
        participant = self.participants.get(identity)
        if participant is None or not participant["present"]:
            return False
        self._left(identity=identity, at=at)
        return True

    @event("ParticipantLeft")
    def _left(self, identity: str, at: int) -> None:
        self.participants[identity] = {
            **self.participants[identity],
            "present": False,
            "leftAt": at,
        }
        if not self.present():
            self.empty_since = at

    def change_role(self, identity: str, role: str) -> None:
        """Make a participant moderator or speaker."""
        self._require_active()
        if role not in ROLES:
            raise MeetingError(f"unknown role '{role}'", error="invalid_role", field="role")
        participant = self._require_participant(identity)
        if participant["role"] != role:
            self._role_changed(identity=identity, role=role)

    @event("ParticipantRoleChanged")
    def _role_changed(self, identity: str, role: str) -> None:
        self.participants[identity] = {**self.participants[identity], "role": role}

    def evict(self, identity: str, at: int) -> None:
        """Remove a participant; the identity may not rejoin this meeting."""
        self._require_active()
        self._require_participant(identity)
        if identity not in self.evicted:
            self._evicted(identity=identity, at=at)

    @event("ParticipantEvicted")
    def _evicted(self, identity: str, at: int) -> None:
        self.evicted = [*self.evicted, identity]
        participant = self.participants[identity]
        self.participants[identity] = {**participant, "present": False, "leftAt": at}
        if not self.present():
            self.empty_since = at

    def end(self, reason: str, at: int) -> bool:
        """End the meeting; False if it had already ended (idempotent)."""
        if not self.active:
            return False
        self._ended(reason=reason, at=at)
        return True

    @event("Ended")
    def _ended(self, reason: str, at: int) -> None:
        self.ended_at = at
        self.end_reason = reason
        self.participants = {
            i: {**p, "present": False, "leftAt": p["leftAt"] or at}
            for i, p in self.participants.items()
        }
