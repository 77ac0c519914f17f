"""Domain events of a Recording → the integration events other services see."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prometheus_client import Counter
from pydantic import BaseModel

from contracts.events import (
    EventEnvelope,
    RecordingActivated,
    RecordingDeleted,
    RecordingFailed,
    RecordingReady,
    RecordingStarted,
    RecordingStopped,
    make_envelope,
)
from services.recordings.domain import Recording
from services.recordings.projection import recording_record
from services.runtime.outbox import integration_event_id

BYTES_WRITTEN = Counter(
    "meetplane_recording_bytes_written_total",
    "Bytes of completed recordings in object storage (counted as RecordingReady is published)",
)


def recording_integration_event(domain_event: Any, state: Any) -> Sequence[EventEnvelope]:
    """The integration events of one domain event, given its aggregate right after it.

    Each recording event carries the recording as it is then (the webhooks' payload).
    """
    if not isinstance(state, Recording):
        return []  # RoomRecorder bookkeeping stays inside the service
    kind = type(domain_event).__name__
    ids = {"recordingId": state.recording_id, "roomId": state.room_id}
    snapshot = {k: v for k, v in recording_record(state).items() if v is not None}
    data: BaseModel
    if kind == "Started":
        data = RecordingStarted(
            **ids, meetingId=state.meeting_id, startDate=state.start_date, recording=snapshot
        )
    elif kind == "Activated":
        data = RecordingActivated(**ids, recording=snapshot)
    elif kind == "StopRequested":
        data = RecordingStopped(**ids, endDate=domain_event.at, recording=snapshot)
    elif kind == "Completed":
        BYTES_WRITTEN.inc(domain_event.size)
        data = RecordingReady(
            **ids,
            size=domain_event.size,
            duration=domain_event.duration,
            objectKey=state.object_key,
            recording=snapshot,
        )
    elif kind == "Failed":
        data = RecordingFailed(**ids, error=domain_event.error, recording=snapshot)
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
