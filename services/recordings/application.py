"""The recordings Application: load, call, save, return plain values."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, TypeVar, cast

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError, Tracking

from services.recordings.domain import (
    Recording,
    RecordingConflict,
    RecordingNotFound,
    RoomRecorder,
    recorder_id,
    recording_aggregate_id,
)
from services.recordings.projection import recording_record
from services.runtime.clock import Clock, SystemClock
from services.runtime.store import ServiceApplication, retries_on_conflict

T = TypeVar("T")


class RecordingsApplication(ServiceApplication):
    """Recording commands and queries over the recordings event store."""

    name = "recordings"

    def __init__(self, env: dict[str, str] | None = None, clock: Clock | None = None) -> None:
        super().__init__(env)
        self.clock: Clock = clock or SystemClock()

    def _recorder(self, room_id: str) -> RoomRecorder | None:
        try:
            return cast(RoomRecorder, self.repository.get(recorder_id(room_id)))
        except AggregateNotFoundError:
            return None

    def recording(self, recording_id: str) -> Recording:
        """A live (not deleted) recording."""
        try:
            recording = cast(Recording, self.repository.get(recording_aggregate_id(recording_id)))
        except AggregateNotFoundError:
            raise RecordingNotFound(f"recording '{recording_id}' does not exist") from None
        if recording.deleted:
            raise RecordingNotFound(f"recording '{recording_id}' does not exist")
        return recording

    def load(self, aggregate: Any, version: int | None = None) -> Any:
        """Any aggregate at a version (outbox, media deletion)."""
        return self.repository.get(aggregate, version=version)

    def _retrying(self, action: Callable[[], T]) -> T:
        try:
            return self.retry_on_conflict(action)
        except IntegrityError:
            raise RecordingConflict(
                "a recording is already running in this room", error="recording_already_started"
            ) from None

    def start(
        self, room_id: str, room_name: str, meeting_id: str | None, layout: str, encoding: Any
    ) -> dict[str, Any]:
        """Start a recording in the room (one at a time)."""

        def attempt() -> dict[str, Any]:
            recorder = self._recorder(room_id) or RoomRecorder(room_id=room_id)
            recording_id = f"{room_id}--{uuid.uuid4().hex[:12]}"
            recorder.begin(recording_id)
            now = self.clock.now_ms()
            recording = Recording(
                recording_id=recording_id,
                room_id=room_id,
                room_name=room_name,
                meeting_id=meeting_id,
                layout=layout,
                encoding=encoding,
                object_key=f"recordings/{room_id}/{recording_id}.mp4",
                start_date=now,
            )
            self.save(recorder, recording)
            return recording_record(recording) | {"objectKey": recording.object_key}

        return self._retrying(attempt)

    @retries_on_conflict
    def activate(self, recording_id: str, egress_id: str | None = None) -> None:
        """The backend runs the recording."""
        recording = self.recording(recording_id)
        recording.activate(egress_id)
        self.save(recording)

    @retries_on_conflict
    def stop(self, recording_id: str) -> dict[str, Any]:
        """Ask an active recording to stop."""
        recording = self.recording(recording_id)
        recording.request_stop(self.clock.now_ms())
        self.save(recording)
        return recording_record(recording)

    @retries_on_conflict
    def finish(
        self, recording_id: str, size: int | None, duration: float, error: str | None
    ) -> bool:
        """The media is complete (or failed); frees the room. False if already final."""
        recording = self.recording(recording_id)
        now = self.clock.now_ms()
        if error is not None or size is None:
            changed = recording.fail(error or "no media was produced", now)
        else:
            changed = recording.complete(size, duration, now)
        recorder = self._recorder(recording.room_id)
        released = recorder is not None and recorder.release(recording_id)
        if changed or released:
            self.save(recording, recorder if released else None)
        return changed

    def active_in_room(self, room_id: str) -> str | None:
        """The room's active recording id."""
        recorder = self._recorder(room_id)
        return recorder.active_recording_id if recorder else None

    @retries_on_conflict
    def delete(self, recording_id: str, tracking: Tracking | None = None) -> dict[str, Any]:
        """Delete metadata; the media deletion follower removes the object after commit."""
        recording = self.recording(recording_id)
        recording.delete()
        if tracking is None:
            self.save(recording)
        else:
            self.save_tracked(recording, tracking=tracking)
        return {"recordingId": recording_id, "deleted": True}

    def get(self, recording_id: str) -> dict[str, Any]:
        """One recording."""
        return recording_record(self.recording(recording_id))
