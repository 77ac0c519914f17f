"""Recording aggregates: OpenVidu Meet's recording state machine, no I/O.

`RoomRecorder` (one per room) records the active recording, so two concurrent
starts conflict on its version and only one recording runs per room.
"""

from __future__ import annotations

import uuid
from typing import Any

from eventsourcing.domain import Aggregate, event

from services.runtime.errors import DomainError

RECORDER_NAMESPACE = uuid.UUID("5b2e8f0a-9c1d-4e7b-8a6f-2d3c4b5a6e7f")
RECORDING_NAMESPACE = uuid.UUID("c4d5e6f7-1a2b-4c3d-9e8f-7a6b5c4d3e2f")
FINAL = ("complete", "limit_reached", "failed", "aborted")
STREAMABLE = ("complete", "limit_reached")


class RecordingError(DomainError):
    """Base of the recordings domain errors; `error` is the API error code."""

    error = "recording_error"


class RecordingNotFound(RecordingError):
    """No such recording (or it was deleted)."""

    error = "recording_not_found"


class RecordingConflict(RecordingError):
    """The recording's or room's state forbids it."""

    error = "recording_conflict"


class RecordingForbidden(RecordingError):
    """The room's configuration forbids recording."""

    error = "recording_forbidden"


def recorder_id(room_id: str) -> uuid.UUID:
    """Aggregate id of a room's recorder."""
    return uuid.uuid5(RECORDER_NAMESPACE, room_id)


def recording_aggregate_id(recording_id: str) -> uuid.UUID:
    """Aggregate id of a recording."""
    return uuid.uuid5(RECORDING_NAMESPACE, recording_id)


class RoomRecorder(Aggregate):
    """Which recording, if any, runs in a room."""

    @event("Created")
    def __init__(self, room_id: str) -> None:
        self.room_id = room_id
        self.active_recording_id: str | None = None

    @classmethod
    def create_id(cls, room_id: str, **_: Any) -> uuid.UUID:
        """One recorder per room."""
        return recorder_id(room_id)

    def begin(self, recording_id: str) -> None:
        """Claim the room for a recording."""
        if self.active_recording_id is not None:
            raise RecordingConflict(
                f"Room '{self.room_id}' is already being recorded",
                error="recording_already_started",
            )
        self._begun(recording_id=recording_id)

    @event("Begun")
    def _begun(self, recording_id: str) -> None:
        self.active_recording_id = recording_id

    def release(self, recording_id: str) -> bool:
        """The recording finished; False if it was not the active one."""
        if self.active_recording_id != recording_id:
            return False
        self._released(recording_id=recording_id)
        return True

    @event("Released")
    def _released(self, recording_id: str) -> None:
        self.active_recording_id = None


STOP_DETAILS = {
    "api": "Stopped using API",
    "meeting_ended": "Stopped because the meeting ended",
    "room_deleted": "Stopped because the room was deleted",
}


class Recording(Aggregate):
    """One recording: starting → active → ending → complete | limit_reached | failed | aborted.

    `details` says how it ended (OpenVidu Meet's `details`); the access secrets
    back the shareable links (public: anyone with the link, when the room allows
    anonymous recording access; private: signed-in users only).
    """

    @event("Started")
    def __init__(
        self,
        recording_id: str,
        room_id: str,
        room_name: str,
        meeting_id: str | None,
        layout: str,
        encoding: Any,
        object_key: str,
        start_date: int,
        public_secret: str = "",
        private_secret: str = "",
    ) -> None:
        self.recording_id = recording_id
        self.room_id = room_id
        self.room_name = room_name
        self.meeting_id = meeting_id
        self.layout = layout
        self.encoding = encoding
        self.object_key = object_key
        self.filename = object_key.rsplit("/", 1)[-1]
        self.start_date = start_date
        self.end_date: int | None = None
        self.duration: float | None = None
        self.size: int | None = None
        self.error: str | None = None
        self.details: str | None = None
        self.status = "starting"
        self.egress_id: str | None = None
        self.public_secret = public_secret
        self.private_secret = private_secret
        self.links_revoked_at: int | None = None
        self.deleted = False

    @classmethod
    def create_id(cls, recording_id: str, **_: Any) -> uuid.UUID:
        """Aggregate ids are derived from recording ids."""
        return recording_aggregate_id(recording_id)

    @property
    def final(self) -> bool:
        """Complete, limit_reached, failed or aborted."""
        return self.status in FINAL

    def activate(self, egress_id: str | None = None) -> bool:
        """The media backend reports the recording running; False when nothing changed."""
        if self.status != "starting":
            return False
        self._activated(egress_id=egress_id)
        return True

    @event("Activated")
    def _activated(self, egress_id: str | None) -> None:
        self.status = "active"
        self.egress_id = egress_id

    def request_stop(self, at: int, reason: str = "api") -> None:
        """Stop an active recording; media is being finalised.

        Only `api` stops follow OpenVidu's rule that a recording still starting
        cannot be stopped; the service's own stops (meeting ended, room deleted)
        also stop a starting one.
        """
        if self.status == "starting" and reason == "api":
            raise RecordingConflict(
                f"Recording '{self.recording_id}' cannot be stopped while starting",
                error="recording_starting",
            )
        if self.status not in ("starting", "active"):
            raise RecordingConflict(
                f"Recording '{self.recording_id}' is already stopped",
                error="recording_not_active",
            )
        self._stop_requested(at=at, reason=reason)

    @event("StopRequested")
    def _stop_requested(self, at: int, reason: str = "api") -> None:
        self.status = "ending"
        self.end_date = at
        self.duration = round(max(0, at - self.start_date) / 1000, 3)
        self.details = STOP_DETAILS.get(reason, reason)

    def complete(self, size: int, duration: float, at: int, limit_reached: bool = False) -> bool:
        """The media file is complete in storage; False when already final (replay)."""
        if self.final:
            return False
        self._completed(size=size, duration=duration, at=at, limit_reached=limit_reached)
        return True

    @event("Completed")
    def _completed(self, size: int, duration: float, at: int, limit_reached: bool = False) -> None:
        self.status = "limit_reached" if limit_reached else "complete"
        self.size = size
        self.duration = duration
        self.end_date = self.end_date or at
        if limit_reached:
            self.details = "Stopped because the maximum recording duration was reached"
        elif self.details is None:
            self.details = "Recording ended"

    def fail(self, error: str, at: int, status: str | None = None) -> bool:
        """The recording failed; False when already final.

        Without an explicit `status` it is `aborted` if it never became active
        and `failed` otherwise.
        """
        if self.final:
            return False
        if status is None:
            status = "aborted" if self.status == "starting" else "failed"
        self._failed(error=error, at=at, aborted=status == "aborted")
        return True

    @event("Failed")
    def _failed(self, error: str, at: int, aborted: bool) -> None:
        self.status = "aborted" if aborted else "failed"
        self.error = error
        self.end_date = self.end_date or at
        self.size = self.size or 0
        self.duration = self.duration or 0
        self.details = f"Recording {self.status}: {error}"

    def revoke_links(self, public_secret: str, private_secret: str, at: int) -> None:
        """New share-link secrets: every link given out so far stops working."""
        self._links_revoked(public_secret=public_secret, private_secret=private_secret, at=at)

    @property
    def links_issued_at(self) -> int:
        """When the current share-link secrets were made (epoch ms)."""
        return getattr(self, "links_revoked_at", None) or self.start_date

    @event("LinksRevoked")
    def _links_revoked(self, public_secret: str, private_secret: str, at: int) -> None:
        self.public_secret = public_secret
        self.private_secret = private_secret
        self.links_revoked_at = at

    def delete(self) -> None:
        """Delete a finished recording's metadata; its object is removed after commit."""
        if self.deleted:
            raise RecordingNotFound(f"Recording '{self.recording_id}' not found")
        if not self.final:
            raise RecordingConflict(
                f"Recording '{self.recording_id}' is not stopped yet",
                error="recording_not_stopped",
            )
        self._deleted()

    @event("Deleted")
    def _deleted(self) -> None:
        self.deleted = True
