"""Response models of the REST API, for the OpenAPI document (OpenVidu Meet v3.8.0 shapes).

Routes build their bodies as dicts and declare these models with `documented(...)`:
the models describe what leaves the gateway without filtering it, so a field a route
forgets to document shows up in the schemathesis run (response-schema check) rather than
being dropped silently.  Every field is optional where `fields`/`X-Fields` can leave it
out.  meetplane's extensions are marked as such in their descriptions.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from contracts.rooms import AutoDeletionPolicy, Permissions, RoomConfig

# --- errors -------------------------------------------------------------------------


class ErrorDetail(BaseModel):
    """One field that failed validation."""

    field: str = Field(examples=["roomName"])
    message: str = Field(examples=["String should have at most 50 characters"])


class ErrorBody(BaseModel):
    """Every error: OpenVidu's `{error, message}`; `details` on 422; `code` is meetplane's."""

    error: str = Field(examples=["Room Error"])
    message: str = Field(examples=['Room "room-123" does not exist'])
    details: list[ErrorDetail] | None = Field(
        None, description="Field errors (422 only)", examples=[[]]
    )
    code: str | None = Field(
        None,
        description="meetplane extension: a stable machine code for the error",
        examples=["room_not_found"],
    )


class Message(BaseModel):
    """A confirmation."""

    message: str = Field(examples=["Room 'room-123' deleted successfully"])


# --- rooms ----------------------------------------------------------------------------


class _Open(BaseModel):
    # Documented, not filtered: fields a future version adds do not break this model.
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class AccessLink(_Open):
    """Whether a link works, and the link."""

    enabled: bool
    url: str = Field(examples=["https://meet.example.com/room/room-123?secret=123456"])


class AnonymousLinks(_Open):
    """The anonymous links of a room, one per role and one for its recordings."""

    moderator: AccessLink
    speaker: AccessLink
    recording: AccessLink


class RoomAccess(_Open):
    """Who can enter a room and with which link."""

    anonymous: AnonymousLinks
    user: AccessLink


class RolePermissions(_Open):
    """A role's complete permissions."""

    permissions: Permissions


class RoomRoles(_Open):
    """Both roles' permissions."""

    moderator: RolePermissions
    speaker: RolePermissions


ExtraFields = Field(
    None,
    alias="_extraFields",
    description="The extra fields this route can include (X-ExtraFields / extraFields)",
    examples=[["config", "roles"]],
)


class Room(_Open):
    """A room (`config` and `roles` only when asked for with extraFields)."""

    roomId: str | None = Field(None, examples=["room-123"])
    roomName: str | None = Field(None, examples=["room"])
    owner: str | None = Field(None, examples=["admin"])
    creationDate: int | None = Field(None, examples=[1620000000000])
    autoDeletionDate: int | None = Field(None, examples=[1900000000000])
    autoDeletionPolicy: AutoDeletionPolicy | None = None
    config: RoomConfig | None = None
    roles: RoomRoles | None = None
    access: RoomAccess | None = None
    status: Literal["open", "active_meeting", "closed"] | None = None
    rolesUpdatedAt: int | None = Field(None, examples=[1620000000000])
    meetingEndAction: Literal["none", "delete", "close"] | None = None
    extra_fields: list[str] | None = ExtraFields


class Pagination(_Open):
    """Where a page ends; pass `nextPageToken` back for the next one."""

    isTruncated: bool
    nextPageToken: str | None = None
    maxItems: int = Field(examples=[10])


class RoomList(_Open):
    """A page of rooms."""

    rooms: list[Room]
    extra_fields: list[str] | None = ExtraFields
    pagination: Pagination


class RoomDeleted(_Open):
    """What deleting a room did (200) or will do when its meeting ends (202)."""

    successCode: str = Field(examples=["room_deleted"])
    message: str
    room: Room | None = None


class RoomOutcome(_Open):
    """One room of a bulk delete that was processed."""

    roomId: str | None = None
    successCode: str
    message: str
    room: Room | None = None


class RoomFailure(_Open):
    """One room of a bulk delete that was not processed."""

    roomId: str
    error: str
    message: str


class BulkRoomsDeleted(_Open):
    """A bulk delete: each room processed or failed (400 when any failed)."""

    message: str
    deleted: list[RoomOutcome]
    failed: list[RoomFailure]


class RoomUpdated(_Open):
    """meetplane extension: the room after `PUT /rooms/{roomId}`."""

    message: str
    room: Room


class RoomEvent(_Open):
    """meetplane extension: one event of a room's history."""

    type: str | None = None


class RoomHistory(_Open):
    """meetplane extension: a page of a room's events."""

    events: list[dict[str, Any]]
    pagination: Pagination


# --- recordings -------------------------------------------------------------------------


class Recording(_Open):
    """A recording (fields left out when null; `fields` selects)."""

    recordingId: str | None = Field(None, examples=["room-123--EG_XYZ--XX445"])
    roomId: str | None = None
    roomName: str | None = None
    status: (
        Literal["starting", "active", "ending", "complete", "failed", "aborted", "limit_reached"]
        | None
    ) = None
    layout: Literal["grid", "speaker", "single-speaker"] | None = None
    encoding: str | dict[str, Any] | None = Field(None, examples=["H264_720P_30"])
    filename: str | None = None
    startDate: int | None = None
    endDate: int | None = None
    duration: float | None = None
    size: int | None = None
    errorCode: int | None = None
    error: str | None = None
    details: str | None = None


class RecordingList(_Open):
    """A page of recordings."""

    recordings: list[Recording]
    pagination: Pagination


class RecordingFailure(_Open):
    """One recording a bulk delete did not delete."""

    recordingId: str
    error: str


class BulkRecordingsDeleted(_Open):
    """A bulk delete of recordings (400 when any failed)."""

    message: str
    deleted: list[str]
    failed: list[RecordingFailure]


class RecordingUrl(_Open):
    """A share link of a recording."""

    url: str


# --- meetings, members, users, webhooks, auth: typed loosely but typed ----------------


class Meeting(_Open):
    """The live meeting of a room (3.9); meetplane adds `meetingId`, `participants`..."""

    roomId: str
    roomName: str
    startDate: int
    participantCount: int
    recordingActive: bool


class Participant(_Open):
    """A participant of a live meeting (3.9)."""

    participantIdentity: str
    participantName: str
    role: Literal["moderator", "speaker"]
    joinDate: int
    audioEnabled: bool
    videoEnabled: bool
    screenSharing: bool


class ParticipantList(_Open):
    """The participants of a live meeting."""

    participants: list[Participant]


class ParticipantRoleChanged(_Open):
    """A role change applied (meetplane adds the participant's record)."""

    message: str
    participant: dict[str, Any] | None = None


class MeetingEnded(_Open):
    """A meeting that was ended."""

    message: str


class Joined(_Open):
    """meetplane extension: what a participant needs to connect to the media server."""

    token: str | None = None


class Member(_Open):
    """A room member."""

    memberId: str | None = None
    roomId: str | None = None


class MemberList(_Open):
    """A page of room members."""

    members: list[Member]
    pagination: Pagination | None = None


class BulkMembersDeleted(_Open):
    """A bulk removal of room members."""

    message: str


class MemberToken(_Open):
    """A room member token."""

    token: str


class User(_Open):
    """A user."""

    userId: str | None = None


class UserList(_Open):
    """A page of users."""

    users: list[User]
    pagination: Pagination | None = None


class BulkUsersDeleted(_Open):
    """A bulk delete of users."""

    message: str


class Tokens(_Open):
    """Tokens issued at sign-in or refresh."""

    message: str | None = None


class ApiKey(_Open):
    """An API key (its value only when created)."""

    key: str | None = None


class WebhookConfig(_Open):
    """The global webhook's configuration."""

    enabled: bool | None = None
    url: str | None = None


class Webhook(_Open):
    """A webhook subscriber (3.9 line)."""

    webhookId: str | None = None


class WebhookList(_Open):
    """Every webhook subscriber."""

    webhooks: list[Webhook]


class Delivery(_Open):
    """meetplane extension: one webhook delivery with its attempts."""

    deliveryId: str | None = None


class DeliveryList(_Open):
    """meetplane extension: a delivery log."""

    deliveries: list[Delivery]


class Health(_Open):
    """Liveness."""

    status: str = Field(examples=["ok"])


class Readiness(_Open):
    """Readiness: each check, and the names of what is down."""

    status: Literal["ready", "not_ready"]
    checks: dict[str, bool]
    down: list[str]


class AsyncApiDocument(_Open):
    """The AsyncAPI document of the integration events."""

    asyncapi: str = Field(examples=["3.0.0"])


class LivekitApplied(_Open):
    """meetplane: what a LiveKit webhook changed."""


def documented(
    model: Any,
    status: int = 200,
    *others: tuple[int, Any],
    errors: tuple[int, ...] = (),
    media: str | None = None,
) -> dict[str, Any]:
    """Route keyword arguments: `model` documents the success body (not a filter).

    `others` are further success statuses (202 for a scheduled action, 400 for a bulk
    operation that partly failed); `errors` are route-specific error statuses on top of
    the ones every route documents (services/gateway/api.py).  `media` is the content
    type of a route that answers bytes (then `model` is None).
    """
    responses: dict[int | str, dict[str, Any]] = {}
    if media is not None:
        binary = {"schema": {"type": "string", "format": "binary"}}
        responses[status] = {"description": "The file", "content": {media: binary}}
    elif model is not None:
        responses[status] = {"model": model}
    for code, other in others:
        if media is not None:
            responses[code] = {"description": "Part of the file", "content": {media: binary}}
        else:
            responses[code] = {"model": other}
    for code in errors:
        responses[code] = {"model": ErrorBody}
    kwargs: dict[str, Any] = {"status_code": status, "response_model": None}
    kwargs["responses"] = responses
    if media is not None:
        kwargs["response_class"] = Response  # bytes: no JSON body documented
    return kwargs


def json_body(
    content: Any, status_code: int = 200, headers: dict[str, str] | None = None
) -> JSONResponse:
    """A JSON response rendered as it is, for the routes called most (create, get, join).

    What the services answered is already plain JSON; returned as a dict, FastAPI
    walks every nested value of it with `jsonable_encoder` first (5 to 7 % of the
    gateway's CPU on a create or a join, py-spy).  The route's documented model
    (`documented`) is unchanged.
    """
    return JSONResponse(content, status_code=status_code, headers=headers)
