"""The recordings Application: load, call, save, return plain values."""

from __future__ import annotations

import secrets
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

    def __init__(
        self,
        env: dict[str, str] | None = None,
        clock: Clock | None = None,
        start_timeout_ms: int = 30_000,
        end_timeout_ms: int = 600_000,
    ) -> None:
        super().__init__(env)
        self.clock: Clock = clock or SystemClock()
        # A recording still `starting` (or `ending`) after this long will never get
        # there: its egress or the replica that started it is gone.
        self.start_timeout_ms = start_timeout_ms
        self.end_timeout_ms = end_timeout_ms

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
            raise RecordingNotFound(f"Recording '{recording_id}' not found") from None
        if recording.deleted:
            raise RecordingNotFound(f"Recording '{recording_id}' not found")
        return recording

    def load(self, aggregate: Any, version: int | None = None) -> Any:
        """Any aggregate at a version (outbox, media deletion)."""
        return self.repository.get(aggregate, version=version)

    def _retrying(self, action: Callable[[], T]) -> T:
        try:
            return self.retry_on_conflict(action)
        except IntegrityError:
            raise RecordingConflict(
                "the room is already being recorded", error="recording_already_started"
            ) from None

    def start(
        self, room_id: str, room_name: str, meeting_id: str | None, layout: str, encoding: Any
    ) -> dict[str, Any]:
        """Start a recording in the room (one at a time).

        A recording that holds the room but is stuck (its starter crashed before
        the egress ran) is failed first, so the room is never blocked forever.
        """

        def attempt() -> dict[str, Any]:
            recorder = self._recorder(room_id) or RoomRecorder(room_id=room_id)
            now = self.clock.now_ms()
            stuck = self._release_if_stuck(recorder, now)
            # OpenVidu's shape: {roomId}--{egressId}--{uid}; the egress part is ours.
            recording_id = f"{room_id}--EG_{uuid.uuid4().hex[:12]}--{secrets.token_hex(3)[:5]}"
            recorder.begin(recording_id)
            recording = Recording(
                recording_id=recording_id,
                room_id=room_id,
                room_name=room_name,
                meeting_id=meeting_id,
                layout=layout,
                encoding=encoding,
                object_key=f"recordings/{room_id}/{recording_id}.mp4",
                start_date=now,
                public_secret=secrets.token_urlsafe(16),
                private_secret=secrets.token_urlsafe(16),
            )
            self.save(*([stuck] if stuck else []), recorder, recording)
            return recording_record(recording) | {"objectKey": recording.object_key}

        return self._retrying(attempt)

    def _stuck(self, recording: Recording, now: int) -> bool:
        if recording.status == "starting":
            return now - recording.start_date >= self.start_timeout_ms
        if recording.status == "ending":
            return now - (recording.end_date or recording.start_date) >= self.end_timeout_ms
        return False

    def _release_if_stuck(self, recorder: RoomRecorder, now: int) -> Recording | None:
        """Fail the recorder's recording if it is stuck or already final; None otherwise."""
        active = recorder.active_recording_id
        if active is None:
            return None
        try:
            recording = cast(Recording, self.repository.get(recording_aggregate_id(active)))
        except AggregateNotFoundError:
            recorder.release(active)
            return None
        if not recording.final and not self._stuck(recording, now):
            return None
        what = "starting" if recording.status == "starting" else "finishing"
        recording.fail(f"timed out while {what}", now, status="failed")
        recorder.release(active)
        return recording

    @retries_on_conflict
    def reconcile(self, recording_id: str) -> bool:
        """Fail a stuck recording and free its room; False when it is not stuck (any more)."""
        recording = self.recording(recording_id)
        now = self.clock.now_ms()
        if recording.final or not self._stuck(recording, now):
            return False
        recorder = self._recorder(recording.room_id)
        if recorder is not None and recorder.active_recording_id == recording_id:
            failed = self._release_if_stuck(recorder, now)
            self.save(*([failed] if failed else []), recorder)
        else:
            recording.fail("timed out", now, status="failed")
            self.save(recording)
        return True

    @retries_on_conflict
    def activate(self, recording_id: str, egress_id: str | None = None) -> None:
        """The backend runs the recording; its egress id is kept for the stop."""
        recording = self.recording(recording_id)
        if recording.activate(egress_id):
            self.save(recording)

    @retries_on_conflict
    def stop(self, recording_id: str, reason: str = "api") -> dict[str, Any]:
        """Ask a recording to stop (its egress is stopped from the log)."""
        recording = self.recording(recording_id)
        recording.request_stop(self.clock.now_ms(), reason)
        self.save(recording)
        return recording_record(recording)

    @retries_on_conflict
    def finish(
        self,
        recording_id: str,
        size: int | None,
        duration: float,
        error: str | None,
        limit_reached: bool = False,
        failed_status: str | None = None,
    ) -> bool:
        """The media is complete (or failed); frees the room. False if already final."""
        recording = self.recording(recording_id)
        now = self.clock.now_ms()
        if error is not None or size is None:
            changed = recording.fail(error or "no media was produced", now, failed_status)
        else:
            changed = recording.complete(size, duration, now, limit_reached)
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

    @retries_on_conflict
    def revoke_links(self, recording_id: str) -> dict[str, Any]:
        """Replace a recording's share-link secrets; links given out so far stop working."""
        recording = self.recording(recording_id)
        recording.revoke_links(
            secrets.token_urlsafe(16), secrets.token_urlsafe(16), self.clock.now_ms()
        )
        self.save(recording)
        return {"recordingId": recording_id, "linksRevoked": True}

    def get(self, recording_id: str) -> dict[str, Any]:
        """One recording."""
        return recording_record(self.recording(recording_id))
