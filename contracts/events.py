"""Integration events: the envelope, every event of ARCHITECTURE.md, and their subjects.

Domain events stay inside a service; what crosses the wire is one of these.
Each event type has a data model and a subject `meetplane.evt.<aggregate>.<event>`.
Versions start at 1; a breaking change to a data model adds a new version.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from contracts.identity import MemberRole, UserRole
from contracts.rooms import RoomState, WithMeeting, WithRecordings

SUBJECT_PREFIX = "meetplane.evt"
Source = Literal["rooms", "meetings", "recordings", "janitor", "gateway", "identity"]


class EventEnvelope(BaseModel):
    """What every message on the MEETPLANE stream looks like.

    `id` is stable across re-publication (the outbox derives it from the domain
    event), so it doubles as the JetStream `Nats-Msg-Id` and as the consumers'
    idempotency key.

    `traceparent` is a meetplane extension: the W3C trace context of the commit
    that stored the event (set by the outbox when tracing was on), so a consumer
    joins the trace of the command that caused it even when the message headers
    carry none.  Absent from the JSON when unset.
    """

    model_config = ConfigDict(extra="forbid")

    id: UUID
    type: str
    version: int = 1
    occurred_at: datetime
    source: Source
    subject_id: str
    data: dict[str, Any]
    # Not validated: a malformed one is ignored by consumers, never a reason to park.
    traceparent: str | None = Field(
        default=None,
        description="meetplane extension: W3C traceparent of the commit that stored the event",
    )

    def parse_data(self) -> BaseModel:
        """Validate `data` against the model registered for `type`."""
        return EVENT_TYPES[self.type].model.model_validate(self.data)


# ---- rooms -------------------------------------------------------------------


class RoomCreated(BaseModel):
    """A room was created."""

    room: RoomState


class RoomUpdated(BaseModel):
    """A room's configuration, roles, access, name, auto-deletion or end action changed."""

    room: RoomState
    changed: list[str] = Field(default_factory=list)


class RoomStatusChanged(BaseModel):
    """A room was opened or closed (locked)."""

    roomId: str
    status: Literal["open", "closed"]
    reason: str = "admin"
    endMeeting: bool = False


class RoomDeleted(BaseModel):
    """A room is gone; other services act on `withMeeting` / `withRecordings`."""

    roomId: str
    withMeeting: WithMeeting
    withRecordings: WithRecordings
    reason: Literal["admin", "auto_deletion", "meeting_end_action"] = "admin"


# ---- meetings ----------------------------------------------------------------

ParticipantRole = Literal["moderator", "speaker"]
EndReason = Literal[
    "ended_by_admin",
    "room_deleted",
    "room_closed",
    "empty_timeout",
    "auto_deleted",
    "media_server_shutdown",
    "livekit",
]


class MeetingStarted(BaseModel):
    """The first participant joined a room: a meeting is live."""

    meetingId: str
    roomId: str
    startedAt: int


class ParticipantJoined(BaseModel):
    """A participant joined a meeting."""

    meetingId: str
    roomId: str
    identity: str
    name: str
    role: ParticipantRole


class ParticipantLeft(BaseModel):
    """A participant left a meeting."""

    meetingId: str
    roomId: str
    identity: str


class ParticipantRoleChanged(BaseModel):
    """A participant's role changed."""

    meetingId: str
    roomId: str
    identity: str
    role: ParticipantRole


class ParticipantEvicted(BaseModel):
    """A participant was removed and may not rejoin this meeting."""

    meetingId: str
    roomId: str
    identity: str


class MeetingEnded(BaseModel):
    """A meeting ended for a stated reason."""

    meetingId: str
    roomId: str
    reason: EndReason
    endedAt: int


# ---- recordings --------------------------------------------------------------


class RecordingStarted(BaseModel):
    """A recording started (egress requested); status `starting`.

    Every recording event carries `recording`: the recording as the API shows it
    at that moment (OpenVidu Meet's MeetRecording, absent values left out), so a
    consumer (the webhooks) needs nothing else.
    """

    recordingId: str
    roomId: str
    meetingId: str | None = None
    startDate: int
    recording: dict[str, Any] | None = None


class RecordingActivated(BaseModel):
    """The media backend runs the recording; status `active`."""

    recordingId: str
    roomId: str
    recording: dict[str, Any] | None = None


class RecordingStopped(BaseModel):
    """A recording was asked to stop; media is being finalised (status `ending`)."""

    recordingId: str
    roomId: str
    endDate: int
    recording: dict[str, Any] | None = None


class RecordingReady(BaseModel):
    """The recording's media is complete in object storage (`complete` or `limit_reached`)."""

    recordingId: str
    roomId: str
    size: int
    duration: float
    objectKey: str
    recording: dict[str, Any] | None = None


class RecordingFailed(BaseModel):
    """The recording failed (`failed` or `aborted`); `error` says why."""

    recordingId: str
    roomId: str
    error: str
    recording: dict[str, Any] | None = None


class RecordingDeleted(BaseModel):
    """The recording's metadata is deleted; its object is being removed."""

    recordingId: str
    roomId: str


# ---- janitor -----------------------------------------------------------------


class RoomAutoDeletionDue(BaseModel):
    """A room's auto-deletion time has come; the rooms service applies its policy."""

    roomId: str
    autoDeletionDate: int


# ---- identity ----------------------------------------------------------------
# No password hash, API key, key hash or guest secret ever appears in these events.


class UserCreated(BaseModel):
    """A user account was created."""

    userId: str
    name: str
    role: UserRole
    registrationDate: int
    # The root admin (MEETPLANE_ADMIN_USERNAME): rooms created with an API key belong to it.
    root: bool = False


class UserDeleted(BaseModel):
    """A user account was deleted; every token of the user is void from now on."""

    userId: str
    deletedAt: int


class RoleChanged(BaseModel):
    """A user's role changed; it applies to their tokens from now on."""

    userId: str
    role: UserRole
    roleUpdatedAt: int


class SessionsRevoked(BaseModel):
    """Sessions of a user ended (logout, password change or reset): their tokens are void."""

    userId: str
    sessionIds: list[str]
    reason: Literal["logout", "password_changed", "password_reset"]
    revokedAt: int


class RoomMemberAdded(BaseModel):
    """A user or an identified guest became a member of a room."""

    roomId: str
    memberId: str
    type: Literal["user", "identified_guest"]
    userId: str | None = None
    name: str
    baseRole: MemberRole
    customPermissions: dict[str, bool] = Field(default_factory=dict)


class RoomMemberUpdated(BaseModel):
    """A member's base role or permission overrides changed."""

    roomId: str
    memberId: str
    baseRole: MemberRole
    customPermissions: dict[str, bool] = Field(default_factory=dict)
    permissionsUpdatedAt: int


class RoomMemberRemoved(BaseModel):
    """A member left a room's member list; their member tokens are void from now on."""

    roomId: str
    memberId: str
    removedAt: int
    reason: Literal["removed", "room_deleted", "user_deleted"] = "removed"


class ApiKeyCreated(BaseModel):
    """An API key was created (only its id and non-secret prefix travel)."""

    keyId: str
    prefix: str
    creationDate: int


class ApiKeyRevoked(BaseModel):
    """An API key was deleted; requests carrying it are refused from now on."""

    keyId: str
    revokedAt: int


class EventType(BaseModel):
    """Registry entry: the data model and subject of one event type."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    name: str
    aggregate: str
    model: type[BaseModel]
    version: int = 1

    @property
    def subject(self) -> str:
        """`meetplane.evt.<aggregate>.<EventName>`."""
        return f"{SUBJECT_PREFIX}.{self.aggregate}.{self.name}"


def _registry(aggregate: str, *models: type[BaseModel]) -> dict[str, EventType]:
    return {m.__name__: EventType(name=m.__name__, aggregate=aggregate, model=m) for m in models}


EVENT_TYPES: dict[str, EventType] = {
    **_registry("room", RoomCreated, RoomUpdated, RoomStatusChanged, RoomDeleted),
    **_registry(
        "meeting",
        MeetingStarted,
        ParticipantJoined,
        ParticipantLeft,
        ParticipantRoleChanged,
        ParticipantEvicted,
        MeetingEnded,
    ),
    **_registry(
        "recording",
        RecordingStarted,
        RecordingActivated,
        RecordingStopped,
        RecordingReady,
        RecordingFailed,
        RecordingDeleted,
    ),
    **_registry("janitor", RoomAutoDeletionDue),
    **_registry("user", UserCreated, UserDeleted, RoleChanged, SessionsRevoked),
    **_registry("member", RoomMemberAdded, RoomMemberUpdated, RoomMemberRemoved),
    **_registry("apikey", ApiKeyCreated, ApiKeyRevoked),
}


def subject_of(event_type: str) -> str:
    """The NATS subject an event type is published on."""
    return EVENT_TYPES[event_type].subject


def aggregate_subjects(aggregate: str) -> str:
    """Wildcard subject for every event of one aggregate, e.g. `meetplane.evt.room.*`."""
    return f"{SUBJECT_PREFIX}.{aggregate}.*"


def make_envelope(
    event_id: UUID,
    data: BaseModel,
    *,
    source: Source,
    subject_id: str,
    occurred_at: datetime | None = None,
) -> EventEnvelope:
    """Wrap an event data model in the envelope; the type is the model's class name."""
    event_type = type(data).__name__
    if event_type not in EVENT_TYPES:
        raise KeyError(f"not an integration event: {event_type}")
    return EventEnvelope(
        id=event_id,
        type=event_type,
        version=EVENT_TYPES[event_type].version,
        occurred_at=occurred_at or datetime.now(UTC),
        source=source,
        subject_id=subject_id,
        data=data.model_dump(mode="json"),
    )
