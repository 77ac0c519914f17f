"""Domain events of a Meeting → the integration events other services see."""

from __future__ import annotations

from collections.abc import Callable, Sequence
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


def meeting_integration_mapper(
    load: Callable[[Any, int], Any],
) -> Callable[[Any], Sequence[EventEnvelope]]:
    """Build the outbox mapper; `load(aggregate_id, version)` rebuilds an aggregate."""

    def to_integration(domain_event: Any) -> Sequence[EventEnvelope]:
        kind = type(domain_event).__name__
        if kind not in {
            "Started",
            "ParticipantJoined",
            "ParticipantLeft",
            "ParticipantRoleChanged",
            "ParticipantEvicted",
            "Ended",
        }:
            return []  # RoomOccupancy bookkeeping stays inside the service
        meeting = load(domain_event.originator_id, domain_event.originator_version)
        if not isinstance(meeting, Meeting):
            return []
        ids = {"meetingId": meeting.meeting_id, "roomId": meeting.room_id}
        data: BaseModel
        if kind == "Started":
            data = MeetingStarted(**ids, startedAt=meeting.started_at)
        elif kind == "ParticipantJoined":
            data = ParticipantJoined(
                **ids,
                identity=domain_event.identity,
                name=domain_event.name,
                role=domain_event.role,
            )
        elif kind == "ParticipantLeft":
            data = ParticipantLeft(**ids, identity=domain_event.identity)
        elif kind == "ParticipantRoleChanged":
            data = ParticipantRoleChanged(
                **ids, identity=domain_event.identity, role=domain_event.role
            )
        elif kind == "ParticipantEvicted":
            data = ParticipantEvicted(**ids, identity=domain_event.identity)
        else:
            data = MeetingEnded(**ids, reason=domain_event.reason, endedAt=domain_event.at)
        return [
            make_envelope(
                integration_event_id(domain_event.originator_id, domain_event.originator_version),
                data,
                source="meetings",
                subject_id=meeting.meeting_id,
                occurred_at=domain_event.timestamp,
            )
        ]

    return to_integration
