"""Domain events of a Room → the integration events other services see."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
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


def room_integration_event(domain_event: Any, room: Room) -> Sequence[EventEnvelope]:
    """The integration events of one room domain event, given the room right after it."""
    kind = type(domain_event).__name__
    data: BaseModel
    if kind == "Created":
        data = RoomCreated(room=room_state(room))
    elif kind in UPDATE_LABELS:
        data = RoomUpdated(room=room_state(room), changed=[UPDATE_LABELS[kind]])
    elif kind == "StatusChanged":
        data = RoomStatusChanged(
            roomId=room.room_id,
            status=domain_event.status,
            reason=domain_event.reason,
            endMeeting=domain_event.end_meeting,
        )
    elif kind == "Deleted":
        data = RoomDeleted(
            roomId=room.room_id,
            withMeeting=domain_event.with_meeting,
            withRecordings=domain_event.with_recordings,
            reason=domain_event.reason,
        )
    else:
        # MeetingActivated/Deactivated mirror the meetings service's own events.
        return []
    return [
        make_envelope(
            integration_event_id(domain_event.originator_id, domain_event.originator_version),
            data,
            source="rooms",
            subject_id=room.room_id,
            occurred_at=domain_event.timestamp,
        )
    ]
