"""Domain events of a Recording → the integration events other services see."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from contracts.events import (
    EventEnvelope,
    RecordingDeleted,
    RecordingFailed,
    RecordingReady,
    RecordingStarted,
    RecordingStopped,
    make_envelope,
)
from services.recordings.domain import Recording
from services.runtime.outbox import integration_event_id


def recording_integration_event(domain_event: Any, state: Any) -> Sequence[EventEnvelope]:
    """The integration events of one domain event, given its aggregate right after it."""
    if not isinstance(state, Recording):
        return []  # RoomRecorder bookkeeping stays inside the service
    kind = type(domain_event).__name__
    ids = {"recordingId": state.recording_id, "roomId": state.room_id}
    data: BaseModel
    if kind == "Started":
        data = RecordingStarted(**ids, meetingId=state.meeting_id, startDate=state.start_date)
    elif kind == "StopRequested":
        data = RecordingStopped(**ids, endDate=domain_event.at)
    elif kind == "Completed":
        data = RecordingReady(
            **ids,
            size=domain_event.size,
            duration=domain_event.duration,
            objectKey=state.object_key,
        )
    elif kind == "Failed":
        data = RecordingFailed(**ids, error=domain_event.error)
    elif kind == "Deleted":
        data = RecordingDeleted(**ids)
    else:
        return []
    return [
        make_envelope(
            integration_event_id(domain_event.originator_id, domain_event.originator_version),
            data,
            source="recordings",
            subject_id=state.recording_id,
            occurred_at=domain_event.timestamp,
        )
    ]
