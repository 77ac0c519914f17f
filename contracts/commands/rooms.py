"""Commands of the rooms service (`meetplane.cmd.rooms.<verb>`)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from contracts.rooms import (
    AccessUpdate,
    CreateRoomRequest,
    RolesPatch,
    RoomConfigPatch,
    UpdateRoomSettingsRequest,
    WithMeeting,
    WithRecordings,
)

SERVICE = "rooms"


CommandId = Annotated[str, Field(min_length=1, max_length=100)]


class CreateRoom(BaseModel):
    """Create a room; the request is validated again by the service.

    `commandId` makes the command idempotent: a retry with the same id returns
    the room the first attempt created instead of creating another.
    """

    request: CreateRoomRequest
    commandId: CommandId | None = None
    # The signed-in user who creates the room; the root admin for API-key calls.
    owner: str | None = None


class GetRoom(BaseModel):
    """Get one room."""

    roomId: str


class AccessibleTo(BaseModel):
    """The rooms a non-admin user may see: owned, member of, or open to users."""

    userId: str
    memberRoomIds: list[str] = []


class ListRooms(BaseModel):
    """List rooms with filters, sorting and cursor pagination."""

    roomName: str | None = None
    # v3.8.0: exact and case-sensitive unless asked otherwise.
    roomNameMatchMode: Literal["exact", "prefix", "partial", "regex"] = "exact"
    roomNameCaseInsensitive: bool = False
    status: Literal["open", "active_meeting", "closed"] | None = None
    maxItems: Annotated[int, Field(ge=1, le=100)] = 10
    nextPageToken: str | None = None
    sortField: Literal["creationDate", "roomName", "autoDeletionDate"] = "creationDate"
    sortOrder: Literal["asc", "desc"] = "desc"
    # Rooms matching ANY of these (v3.8.0 `owner`, `member`, `userAccess` filters; the
    # gateway turns `member` into the room ids the identity service reports).
    owner: str | None = None
    memberRoomIds: list[str] | None = None
    userAccess: bool | None = None
    # For a signed-in user who is not an admin: only rooms they own, are a member of,
    # or that have user access enabled.
    accessibleTo: AccessibleTo | None = None


class UpdateRoomConfig(BaseModel):
    """Merge a config patch into the room's config."""

    roomId: str
    config: RoomConfigPatch


class UpdateRoomSettings(BaseModel):
    """Rename, move or clear auto-deletion, change meetingEndAction."""

    roomId: str
    settings: UpdateRoomSettingsRequest


class UpdateRoomStatus(BaseModel):
    """Open or close (lock) a room."""

    roomId: str
    status: Literal["open", "closed"]


class UpdateRoomRoles(BaseModel):
    """Merge role permission patches."""

    roomId: str
    roles: RolesPatch


class UpdateRoomAccess(BaseModel):
    """Enable/disable anonymous links; regenerate secrets."""

    roomId: str
    access: AccessUpdate


class DeleteRoom(BaseModel):
    """Delete a room with the given policies."""

    roomId: str
    withMeeting: WithMeeting = WithMeeting.FAIL
    withRecordings: WithRecordings = WithRecordings.FAIL
    commandId: CommandId | None = None


class DeleteRoomResult(BaseModel):
    """Outcome of a delete: `successCode` and whether it is done now or scheduled."""

    roomId: str
    successCode: str
    message: str
    scheduled: bool = False
    room: dict[str, object] | None = None


class BulkDeleteRooms(BaseModel):
    """Delete several rooms; each gets its own outcome."""

    roomIds: Annotated[list[str], Field(min_length=1, max_length=100)]
    withMeeting: WithMeeting = WithMeeting.FAIL
    withRecordings: WithRecordings = WithRecordings.FAIL
    commandId: CommandId | None = None


class BulkDeleteOutcome(BaseModel):
    """One room's outcome in a bulk delete."""

    roomId: str
    successCode: str | None = None
    error: str | None = None
    message: str
    scheduled: bool = False


class RoomHistory(BaseModel):
    """The room's full domain event history (audit)."""

    roomId: str
    maxItems: Annotated[int, Field(ge=1, le=1000)] = 100
    nextPageToken: str | None = None


class HistoryEntry(BaseModel):
    """One entry of a room's history."""

    version: int
    type: str
    timestamp: int
    data: dict[str, object]
