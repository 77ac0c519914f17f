"""Commands of the recordings service (`meetplane.cmd.recordings.<verb>`).

The recordings service owns this module; other services use only the commands
marked as cross-service.
"""

from __future__ import annotations

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
