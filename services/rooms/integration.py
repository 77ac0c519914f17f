"""Domain events of a Room → the integration events other services see."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel

from contracts.events import (
    EventEnvelope,
    RoomCreated,
    RoomDeleted,
    RoomStatusChanged,
    RoomUpdated,
    make_envelope,
)
from contracts.rooms import RoomState
from services.rooms.domain import Room
from services.runtime.outbox import integration_event_id

# Domain event class name → the RoomUpdated `changed` label.
UPDATE_LABELS = {
    "Renamed": "roomName",
    "ConfigUpdated": "config",
    "RolesUpdated": "roles",
    "AccessUpdated": "access",
    "AutoDeletionSet": "autoDeletionDate",
    "AutoDeletionPolicySet": "autoDeletionPolicy",
    "AutoDeletionCleared": "autoDeletionDate",
    "MeetingEndActionSet": "meetingEndAction",
    "DeletionScheduled": "pendingDeletion",
    "UserAccessSet": "access",
}


def secret_hash(secret: str) -> str:
    """SHA-256 hex of a link secret: what subscribers may know of it."""
    return hashlib.sha256(secret.encode()).hexdigest()


def room_state(room: Room) -> RoomState:
    """The room's public state with hashed secrets."""
    return RoomState.model_validate(
        {
            "roomId": room.room_id,
            "roomName": room.room_name,
            "creationDate": room.creation_date,
            "autoDeletionDate": room.auto_deletion_date,
            "autoDeletionPolicy": room.auto_deletion_policy,
            "config": room.config,
            "roles": room.roles,
            "anonymous": {
                role: {"enabled": link["enabled"], "secretSha256": secret_hash(link["secret"])}
                for role, link in room.anonymous.items()
            },
            "status": room.status,
            "meetingEndAction": room.meeting_end_action,
            "pendingDeletion": room.pending_deletion is not None,
            "owner": room.owner,
            "userAccess": room.user_access,
        }
    )


def room_integration_mapper(
    load: Callable[[Any, int], Room],
) -> Callable[[Any], Sequence[EventEnvelope]]:
    """Build the outbox mapper; `load(aggregate_id, version)` rebuilds a room at a version."""

    def to_integration(domain_event: Any) -> Sequence[EventEnvelope]:
        kind = type(domain_event).__name__
        version = domain_event.originator_version
        event_id = integration_event_id(domain_event.originator_id, version)
        data: BaseModel
        if kind == "Created":
            room = load(domain_event.originator_id, version)
            data = RoomCreated(room=room_state(room))
            room_id = room.room_id
        elif kind in UPDATE_LABELS:
            room = load(domain_event.originator_id, version)
            data = RoomUpdated(room=room_state(room), changed=[UPDATE_LABELS[kind]])
            room_id = room.room_id
        elif kind == "StatusChanged":
            room = load(domain_event.originator_id, version)
            data = RoomStatusChanged(
                roomId=room.room_id,
                status=domain_event.status,
                reason=domain_event.reason,
                endMeeting=domain_event.end_meeting,
            )
            room_id = room.room_id
        elif kind == "Deleted":
            room = load(domain_event.originator_id, version)
            data = RoomDeleted(
                roomId=room.room_id,
                withMeeting=domain_event.with_meeting,
                withRecordings=domain_event.with_recordings,
                reason=domain_event.reason,
            )
            room_id = room.room_id
        else:
            # MeetingActivated/Deactivated mirror the meetings service's own events.
            return []
        return [
            make_envelope(
                event_id,
                data,
                source="rooms",
                subject_id=room_id,
                occurred_at=domain_event.timestamp,
            )
        ]

    return to_integration
