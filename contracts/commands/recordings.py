"""Commands of the recordings service (`meetplane.cmd.recordings.<verb>`).

The recordings service owns this module; other services use only the commands
marked as cross-service.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

SERVICE = "recordings"


class RoomHasRecordings(BaseModel):
    """Cross-service (rooms → recordings): any recordings? Verb `room_has_recordings`."""

    roomId: str


class RoomHasRecordingsResult(BaseModel):
    """Answer to `room_has_recordings`."""

    hasRecordings: bool
    count: int = 0


class SweepOrphans(BaseModel):
    """Cross-service (janitor → recordings): reconcile records and objects. Verb `sweep_orphans`.

    With `dryRun` it only reports.  Idempotent and safe to run concurrently.
    """

    dryRun: bool = False
    minAgeMs: int = 3_600_000


class SweepOrphansResult(BaseModel):
    """What a sweep found and did."""

    objectsWithoutRecord: list[str] = Field(default_factory=list)
    recordsWithoutObject: list[str] = Field(default_factory=list)
    deletedObjects: int = 0
    failedRecords: int = 0


class StartRecording(BaseModel):
    """Start recording a room's live meeting (verb `start`)."""

    roomId: str = Field(min_length=1, max_length=100)


class RecordingRef(BaseModel):
    """Address one recording (verbs `get`, `stop`, `delete`, `media`)."""

    recordingId: str = Field(min_length=1, max_length=200)


class ListRecordings(BaseModel):
    """List recordings (verb `list`)."""

    roomId: str | None = None
    # Only these rooms' recordings (what the caller may see; None: every room).
    roomIds: list[str] | None = None
    status: Literal["starting", "active", "ending", "complete", "failed", "aborted"] | None = None
    maxItems: int = Field(default=10, ge=1, le=100)
    nextPageToken: str | None = None
    sortOrder: Literal["asc", "desc"] = "desc"


class BulkDeleteRecordings(BaseModel):
    """Delete several recordings, each with its own outcome (verb `bulk_delete`)."""

    recordingIds: list[str] = Field(min_length=1, max_length=100)


class MediaLocation(BaseModel):
    """Where the gateway streams a recording's media from (verb `media`)."""

    recordingId: str
    filename: str
    size: int
    contentType: str
    url: str
