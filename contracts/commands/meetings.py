"""Commands of the meetings service (`meetplane.cmd.meetings.<verb>`).

The meetings service owns this module; other services use only the commands
marked as cross-service.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from contracts.text import Readable

SERVICE = "meetings"


class EndEmptyMeetings(BaseModel):
    """Cross-service (janitor → meetings): end meetings with no participant for `idleMs`.

    Verb `end_empty`.  Idempotent: a meeting already ended is not counted again.
    """

    idleMs: Annotated[int, Field(ge=0)]


class EndEmptyMeetingsResult(BaseModel):
    """Which meetings were ended (reason `empty_timeout`)."""

    ended: list[str] = Field(default_factory=list)
    checked: int = 0


ParticipantName = Annotated[str, Field(min_length=1, max_length=50), Readable]


class JoinMeeting(BaseModel):
    """Join a room's meeting with a room link secret (verb `join`)."""

    roomId: str
    secret: Annotated[str, Field(min_length=1, max_length=200)]
    participantName: ParticipantName
    # A retry with the same id returns the first attempt's participant (idempotent join).
    commandId: Annotated[str, Field(min_length=1, max_length=100)] | None = None


class JoinMember(BaseModel):
    """Cross-service (gateway → meetings): join as a room member token holder (verb `join_member`).

    The gateway has decided who the caller is and what they may do in the room
    (from the identity service's members and users and the room's roles) and
    sends the role and effective permissions; the meetings service checks the
    room, admits the participant (starting the meeting if none is live) and signs
    the LiveKit token.  `identity` keeps the participant identity of a previous
    token (a regenerated or refreshed join token); with `reconnect` the
    participant must be present already and nothing is joined again.
    `metadata` travels in the LiveKit token's metadata (the member token claims,
    which the gateway verifies when the token comes back as `X-Room-Member-Token`).
    """

    roomId: Annotated[str, Field(min_length=1, max_length=100)]
    participantName: ParticipantName
    role: Literal["moderator", "speaker"]
    permissions: dict[str, bool]
    identity: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    reconnect: bool = False
    metadata: dict[str, Any] = Field(default_factory=dict)
    commandId: Annotated[str, Field(min_length=1, max_length=100)] | None = None


class JoinResult(BaseModel):
    """What a participant needs to connect to the media server."""

    url: str
    token: str
    identity: str
    role: str
    permissions: dict[str, bool]
    meetingId: str
    roomId: str


class RoomMeeting(BaseModel):
    """Address a room's live meeting (verbs `get`, `end`)."""

    roomId: str


class ParticipantRef(BaseModel):
    """Address a participant of a room's live meeting (verbs `evict`, `leave`)."""

    roomId: str
    identity: Annotated[str, Field(min_length=1, max_length=100)]


class ChangeRole(BaseModel):
    """Make a participant moderator or speaker (verb `change_role`)."""

    roomId: str
    identity: Annotated[str, Field(min_length=1, max_length=100)]
    role: Literal["moderator", "speaker"]


class LiveKitWebhook(BaseModel):
    """A verified LiveKit webhook forwarded by the gateway (verb `livekit_webhook`)."""

    event: str
    id: str = ""
    room_name: str = ""
    participant_identity: str = ""
    created_at: int = 0
    # `room_finished`: LiveKit's RoomEndReason name (e.g. ROOM_END_IDLE_TIMEOUT); empty
    # when the server sent none (LiveKit before the field existed).
    room_end_reason: str = Field(default="", max_length=64)
