"""Commands of the recordings service (`meetplane.cmd.recordings.<verb>`).

The recordings service owns this module; other services use only the commands
marked as cross-service.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.rooms import AdvancedEncoding, EncodingPreset, RecordingLayout

SERVICE = "recordings"

RECORDING_ID_MAX = 200
RecordingStatus = Literal[
    "starting", "active", "ending", "complete", "failed", "aborted", "limit_reached"
]
SortField = Literal["startDate", "roomName", "duration", "size"]
MatchMode = Literal["exact", "prefix", "partial", "regex"]


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


class RecordingOverride(BaseModel):
    """Per-recording override of the room's recording layout and encoding."""

    model_config = ConfigDict(extra="forbid", strict=True)

    layout: RecordingLayout | None = None
    encoding: EncodingPreset | AdvancedEncoding | None = None


class StartRecording(BaseModel):
    """Start recording a room's live meeting (verb `start`); `config` overrides the room's."""

    roomId: str = Field(min_length=1, max_length=100)
    config: RecordingOverride | None = None


class RecordingRef(BaseModel):
    """Address one recording (verbs `get`, `stop`, `delete`, `media`, `access_secrets`,
    `revoke_links`)."""

    recordingId: str = Field(min_length=1, max_length=RECORDING_ID_MAX)


class ListRecordings(BaseModel):
    """List recordings (verb `list`): OpenVidu Meet's filters and sorts."""

    roomId: str | None = None
    roomName: str | None = None
    roomNameMatchMode: MatchMode = "exact"
    roomNameCaseInsensitive: bool = False
    status: RecordingStatus | None = None
    # Only these rooms' recordings (what the caller may see; None: every room).
    roomIds: list[str] | None = None
    maxItems: int = Field(default=10, ge=1, le=100)
    nextPageToken: str | None = None
    sortField: SortField = "startDate"
    sortOrder: Literal["asc", "desc"] = "desc"


class AccessSecrets(BaseModel):
    """A recording's share-link secrets (verb `access_secrets`; the gateway checks links).

    `anonymousAccess` is the room's `access.anonymous.recording.enabled`: public
    links work only while it is on.  `issuedAt` (epoch ms) is when the secrets were
    made (the recording's start, or the last revocation): the gateway refuses links
    older than its maximum link lifetime.
    """

    recordingId: str
    roomId: str
    publicSecret: str
    privateSecret: str
    anonymousAccess: bool
    issuedAt: int | None = None


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
