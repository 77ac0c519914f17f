"""Domain events of a Meeting → the integration events other services see."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from contracts.events import (
    EventEnvelope,
    MeetingEnded,
    MeetingStarted,
    ParticipantEvicted,
    ParticipantJoined,
    ParticipantLeft,
    ParticipantRoleChanged,
    make_envelope,
)
from services.meetings.domain import Meeting
from services.runtime.outbox import integration_event_id


def meeting_integration_event(domain_event: Any, state: Any) -> Sequence[EventEnvelope]:
    """The integration events of one domain event, given its aggregate right after it."""
    if not isinstance(state, Meeting):
        return []  # RoomOccupancy and KnownRoom bookkeeping stays inside the service
    kind = type(domain_event).__name__
    ids = {"meetingId": state.meeting_id, "roomId": state.room_id}
    data: BaseModel
    if kind == "Started":
        data = MeetingStarted(**ids, startedAt=state.started_at)
    elif kind == "ParticipantJoined":
        data = ParticipantJoined(
            **ids, identity=domain_event.identity, name=domain_event.name, role=domain_event.role
        )
    elif kind == "ParticipantLeft":
        data = ParticipantLeft(**ids, identity=domain_event.identity)
    elif kind == "ParticipantRoleChanged":
        data = ParticipantRoleChanged(**ids, identity=domain_event.identity, role=domain_event.role)
    elif kind == "ParticipantEvicted":
        data = ParticipantEvicted(**ids, identity=domain_event.identity)
    elif kind == "Ended":
        data = MeetingEnded(**ids, reason=domain_event.reason, endedAt=domain_event.at)
    else:
        return []
    return [
        make_envelope(
            integration_event_id(domain_event.originator_id, domain_event.originator_version),
            data,
            source="meetings",
            subject_id=state.meeting_id,
            occurred_at=domain_event.timestamp,
        )
    ]
