"""Meeting aggregates: invariants and domain events, no I/O.

`RoomOccupancy` (one per room) records which meeting is live; starting a
meeting changes it, so two concurrent first joins conflict on its version in
the event store and only one meeting can start.  `Meeting` (one per room
occupancy) holds participants, roles, evictions and the end.  `KnownRoom` is
what this service knows of a room, recorded from the rooms service's events
into this service's own log (so every read model here is a projection of it).
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import uuid
from typing import Any

from eventsourcing.domain import Aggregate, event

from services.runtime.errors import DomainError

OCCUPANCY_NAMESPACE = uuid.UUID("3f0c6a9d-6a5e-4cf1-9c7f-0f3bdb1a2c55")
KNOWN_ROOM_NAMESPACE = uuid.UUID("b1d6f0a2-93c4-4e0b-8f57-2a6c1e9d4b70")
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


class RoomNotFound(MeetingError):
    """No such room (as far as the room events this service consumed say)."""

    error = "room_not_found"


class InvalidSecret(MeetingError):
    """The link secret matches no enabled link of the room (no hint which part is wrong)."""

    error = "invalid_secret"


class RoomClosed(MeetingError):
    """The room takes no new participants."""

    error = "room_closed"


def known_room_id(room_id: str) -> uuid.UUID:
    """Aggregate id of what this service knows of a room."""
    return uuid.uuid5(KNOWN_ROOM_NAMESPACE, room_id)


def occupancy_id(room_id: str) -> uuid.UUID:
    """Aggregate id of a room's occupancy."""
    return uuid.uuid5(OCCUPANCY_NAMESPACE, room_id)


def meeting_aggregate_id(meeting_id: str) -> uuid.UUID:
    """Aggregate id of a meeting."""
    return uuid.uuid5(MEETING_NAMESPACE, meeting_id)


def secret_matches(secret: str, expected_sha256: str) -> bool:
    """Constant-time comparison of a link secret with the hash room events carry."""
    digest = hashlib.sha256(secret.encode()).hexdigest()
    return hmac.compare_digest(digest, expected_sha256)


class KnownRoom(Aggregate):
    """A room as the rooms service's events describe it: links, roles, open or closed."""

    @event("Recorded")
    def __init__(self, room_id: str, state: dict[str, Any]) -> None:
        self.room_id = room_id
        self.state = state
        self.closed = False
        self.deleted = False

    @classmethod
    def create_id(cls, room_id: str, **_: Any) -> uuid.UUID:
        """One per room."""
        return known_room_id(room_id)

    def record(self, state: dict[str, Any]) -> None:
        """RoomCreated / RoomUpdated: the room's whole state (secrets only as hashes)."""
        if not self.deleted and state != self.state:
            self._recorded(state=state)

    @event("Updated")
    def _recorded(self, state: dict[str, Any]) -> None:
        self.state = state

    def set_closed(self, closed: bool) -> None:
        """RoomStatusChanged."""
        if not self.deleted and closed != self.closed:
            self._status_changed(closed=closed)

    @event("StatusChanged")
    def _status_changed(self, closed: bool) -> None:
        self.closed = closed

    def delete(self) -> None:
        """RoomDeleted: a tombstone, so a late update cannot bring the room back."""
        if not self.deleted:
            self._deleted()

    @event("Deleted")
    def _deleted(self) -> None:
        self.deleted = True

    def __deepcopy__(self, memo: dict[int, Any]) -> KnownRoom:
        """A copy that shares the room's state: every event replaces it, none changes it.

        The aggregate cache copies a room for every unit of work that loads it
        and when the commit that created it is cached; a deep copy of a whole
        room's state was a third of the meetings consumer's time per event.
        """
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone._pending_events = copy.deepcopy(self._pending_events, memo)
        return clone

    @property
    def accepts_participants(self) -> bool:
        """Open: not closed, not waiting to be deleted."""
        return not (
            self.closed
            or self.state.get("status") == "closed"
            or bool(self.state.get("pendingDeletion"))
        )

    def role_for(self, secret: str) -> str | None:
        """The role whose enabled link has this secret (every link is compared)."""
        anonymous = self.state["anonymous"]
        matches = [
            role
            for role in ROLES
            if anonymous[role]["enabled"]
            and secret_matches(secret, anonymous[role]["secretSha256"])
        ]
        return matches[0] if matches else None

    def permissions(self, role: str) -> dict[str, bool]:
        """A role's permissions in this room."""
        return dict(self.state["roles"][role]["permissions"])


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

    def __deepcopy__(self, memo: dict[int, Any]) -> RoomOccupancy:
        """A copy of immutable values: copy's generic deep copy was 5 % of a join's CPU."""
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone._pending_events = copy.deepcopy(self._pending_events, memo)
        return clone

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

    def __deepcopy__(self, memo: dict[int, Any]) -> Meeting:
        """A copy in time independent of the number of participants.

        The aggregate cache hands out copies on every load; a deep copy would
        cost O(participants) per join.  Participant records are never mutated
        in place (every event replaces a participant's dict), so the copy
        shares them and copies only the containers that events change.
        """
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.participants = dict(self.participants)
        clone._pending_events = copy.deepcopy(self._pending_events, memo)
        return clone

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

    def change_role(
        self, identity: str, role: str, permissions: dict[str, bool] | None = None
    ) -> None:
        """Make a participant moderator or speaker (with that role's permissions in the room)."""
        self._require_active()
        if role not in ROLES:
            raise MeetingError(f"unknown role '{role}'", error="invalid_role", field="role")
        participant = self._require_participant(identity)
        if participant["role"] != role:
            self._role_changed(identity=identity, role=role, permissions=permissions)

    @event("ParticipantRoleChanged")
    def _role_changed(
        self, identity: str, role: str, permissions: dict[str, bool] | None = None
    ) -> None:
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
