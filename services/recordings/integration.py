"""Domain events of a Recording → the integration events other services see."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

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


def recording_integration_mapper(
    load: Callable[[Any, int], Any],
) -> Callable[[Any], Sequence[EventEnvelope]]:
    """Build the outbox mapper; `load(aggregate_id, version)` rebuilds an aggregate."""

    def to_integration(domain_event: Any) -> Sequence[EventEnvelope]:
        kind = type(domain_event).__name__
        if kind not in {"Started", "Activated", "StopRequested", "Completed", "Failed", "Deleted"}:
            return []
        recording = load(domain_event.originator_id, domain_event.originator_version)
        if not isinstance(recording, Recording):
            return []  # RoomRecorder bookkeeping stays inside the service
        ids = {"recordingId": recording.recording_id, "roomId": recording.room_id}
        # The recording as it was right after this event (the webhooks' payload).
        snapshot = {k: v for k, v in recording_record(recording).items() if v is not None}
        data: BaseModel
        if kind == "Started":
            data = RecordingStarted(
                **ids,
                meetingId=recording.meeting_id,
                startDate=recording.start_date,
                recording=snapshot,
            )
        elif kind == "Activated":
            data = RecordingActivated(**ids, recording=snapshot)
        elif kind == "StopRequested":
            data = RecordingStopped(**ids, endDate=domain_event.at, recording=snapshot)
        elif kind == "Completed":
            data = RecordingReady(
                **ids,
                size=domain_event.size,
                duration=domain_event.duration,
                objectKey=recording.object_key,
                recording=snapshot,
            )
        elif kind == "Failed":
            data = RecordingFailed(**ids, error=domain_event.error, recording=snapshot)
        else:
            data = RecordingDeleted(**ids)
        return [
            make_envelope(
                integration_event_id(domain_event.originator_id, domain_event.originator_version),
                data,
                source="recordings",
                subject_id=recording.recording_id,
                occurred_at=domain_event.timestamp,
            )
        ]

    return to_integration
