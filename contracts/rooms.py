"""Room shapes that cross the wire (OpenVidu Meet REST API v1 field names).

These models are used by the gateway to validate requests, by the rooms service
for its replies, and inside room integration events.  They reject unknown fields
so that a typo in a request is a 422 naming the field, not a silently ignored key.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, model_validator

from contracts.text import Readable


class Strict(BaseModel):
    """Base for request-side models: unknown fields are an error."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class RoomStatus(StrEnum):
    """Room status as OpenVidu Meet reports it."""

    OPEN = "open"
    ACTIVE_MEETING = "active_meeting"
    CLOSED = "closed"


class MeetingEndAction(StrEnum):
    """What happens to the room when its meeting ends."""

    NONE = "none"
    CLOSE = "close"
    DELETE = "delete"


class WithMeeting(StrEnum):
    """Deletion policy for a room that has an active meeting."""

    FORCE = "force"
    WHEN_MEETING_ENDS = "when_meeting_ends"
    FAIL = "fail"


class WithRecordings(StrEnum):
    """Deletion policy for a room that has recordings."""

    FORCE = "force"
    CLOSE = "close"
    FAIL = "fail"


class AutoDeletionPolicy(Strict):
    """Policy applied when a room's auto-deletion date comes: never `fail`."""

    withMeeting: Literal["force", "when_meeting_ends"] = "when_meeting_ends"
    withRecordings: Literal["force", "close"] = "close"


class Toggle(Strict):
    """A feature switch (chat, virtual background, e2ee, captions)."""

    enabled: StrictBool = True


RecordingLayout = Literal["grid", "speaker", "single-speaker"]
EncodingPreset = Literal[
    "H264_720P_30",
    "H264_720P_60",
    "H264_1080P_30",
    "H264_1080P_60",
    "PORTRAIT_H264_720P_30",
    "PORTRAIT_H264_720P_60",
    "PORTRAIT_H264_1080P_30",
    "PORTRAIT_H264_1080P_60",
]


class VideoEncoding(Strict):
    """Full video options, the alternative to an encoding preset."""

    width: Annotated[StrictInt, Field(ge=16, le=3840)]
    height: Annotated[StrictInt, Field(ge=16, le=2160)]
    framerate: Annotated[StrictInt, Field(ge=1, le=60)]
    codec: Literal["H264_BASELINE", "H264_MAIN", "H264_HIGH", "VP8"] = "H264_MAIN"
    bitrate: Annotated[StrictInt, Field(ge=100, le=50_000)]
    keyFrameInterval: Annotated[float, Field(gt=0, le=20)] = 4
    depth: Annotated[StrictInt, Field(ge=8, le=24)] = 24


class AudioEncoding(Strict):
    """Full audio options, the alternative to an encoding preset."""

    codec: Literal["OPUS", "AAC"] = "OPUS"
    bitrate: Annotated[StrictInt, Field(ge=16, le=512)] = 128
    frequency: Literal[44100, 48000] = 48000


class AdvancedEncoding(Strict):
    """Explicit video + audio options."""

    video: VideoEncoding
    audio: AudioEncoding


class RecordingConfig(Strict):
    """Whether and how a room's meetings are recorded."""

    enabled: StrictBool = True
    layout: RecordingLayout = "grid"
    encoding: EncodingPreset | AdvancedEncoding = "H264_720P_30"

    @model_validator(mode="before")
    @classmethod
    def _drop_removed_fields(cls, data: Any) -> Any:
        # v3.8.0 removed `allowAccessTo` (room roles decide who sees recordings); rooms
        # stored before still carry it.
        if isinstance(data, dict) and "allowAccessTo" in data:
            data = {k: v for k, v in data.items() if k != "allowAccessTo"}
        return data


class RoomConfig(Strict):
    """Room configuration (OpenVidu Meet `config`)."""

    chat: Toggle = Field(default_factory=Toggle)
    recording: RecordingConfig = Field(default_factory=RecordingConfig)
    virtualBackground: Toggle = Field(default_factory=Toggle)
    e2ee: Toggle = Field(default_factory=lambda: Toggle(enabled=False))
    captions: Toggle = Field(default_factory=Toggle)

    @model_validator(mode="after")
    def _e2ee_excludes_recording(self) -> RoomConfig:
        # LiveKit egress cannot decrypt end-to-end encrypted media: as v3.8.0 does, turning
        # e2ee on switches recording off rather than refusing the config.
        if self.e2ee.enabled and self.recording.enabled:
            self.recording = self.recording.model_copy(update={"enabled": False})
        return self


class RoomConfigPatch(Strict):
    """Partial config update: only the given sub-objects change."""

    chat: Toggle | None = None
    recording: RecordingConfig | None = None
    virtualBackground: Toggle | None = None
    e2ee: Toggle | None = None
    captions: Toggle | None = None


class Permissions(Strict):
    """What a role may do in a meeting (OpenVidu Meet permission names)."""

    canRecord: StrictBool = False
    canRetrieveRecordings: StrictBool = True
    canDeleteRecordings: StrictBool = False
    canJoinMeeting: StrictBool = True
    canShareAccessLinks: StrictBool = False
    canMakeModerator: StrictBool = False
    canKickParticipants: StrictBool = False
    canEndMeeting: StrictBool = False
    canPublishVideo: StrictBool = True
    canPublishAudio: StrictBool = True
    canShareScreen: StrictBool = True
    canReadChat: StrictBool = True
    canWriteChat: StrictBool = True
    canChangeVirtualBackground: StrictBool = True


def moderator_permissions() -> Permissions:
    """Default moderator permissions: everything."""
    return Permissions(
        canRecord=True,
        canDeleteRecordings=True,
        canShareAccessLinks=True,
        canMakeModerator=True,
        canKickParticipants=True,
        canEndMeeting=True,
    )


PermissionName = Literal[
    "canRecord",
    "canRetrieveRecordings",
    "canDeleteRecordings",
    "canJoinMeeting",
    "canShareAccessLinks",
    "canMakeModerator",
    "canKickParticipants",
    "canEndMeeting",
    "canPublishVideo",
    "canPublishAudio",
    "canShareScreen",
    "canReadChat",
    "canWriteChat",
    "canChangeVirtualBackground",
]


class RolePermissions(Strict):
    """A role's permission set."""

    permissions: Permissions = Field(default_factory=Permissions)


class Roles(Strict):
    """Permissions of the two link roles."""

    moderator: RolePermissions = Field(
        default_factory=lambda: RolePermissions(permissions=moderator_permissions())
    )
    speaker: RolePermissions = Field(default_factory=RolePermissions)


class RolesPatch(Strict):
    """Partial roles update: permissions given are merged over the current ones."""

    moderator: dict[PermissionName, StrictBool] | None = None
    speaker: dict[PermissionName, StrictBool] | None = None

    @model_validator(mode="after")
    def _known_permissions(self) -> RolesPatch:
        known = set(Permissions.model_fields)
        for role in ("moderator", "speaker"):
            patch = getattr(self, role) or {}
            unknown = sorted(set(patch) - known)
            if unknown:
                raise ValueError(f"unknown permission(s) for {role}: {', '.join(unknown)}")
        return self


class AnonymousAccessToggle(Strict):
    """Enable or disable one anonymous access link."""

    enabled: StrictBool = True


class AnonymousAccessRequest(Strict):
    """Which anonymous links are enabled."""

    moderator: AnonymousAccessToggle = Field(default_factory=AnonymousAccessToggle)
    speaker: AnonymousAccessToggle = Field(default_factory=AnonymousAccessToggle)
    recording: AnonymousAccessToggle = Field(default_factory=AnonymousAccessToggle)


def _user_access_off() -> AnonymousAccessToggle:
    return AnonymousAccessToggle(enabled=False)


class AccessRequest(Strict):
    """Room access settings in a create request (user access is off by default)."""

    anonymous: AnonymousAccessRequest = Field(default_factory=AnonymousAccessRequest)
    user: AnonymousAccessToggle = Field(default_factory=_user_access_off)


class AccessUpdate(Strict):
    """Update of the anonymous links; `regenerate` names links whose secret is replaced."""

    anonymous: AnonymousAccessRequest | None = None
    user: AnonymousAccessToggle | None = None
    regenerate: list[Literal["moderator", "speaker", "recording"]] = Field(default_factory=list)


ROOM_NAME_MAX = 50
# The last millisecond of year 9999: dates past it overflow the int64 columns and
# timers of the services that store them (a poison message once, see issue 9).
EPOCH_MS_MAX = 253_402_300_799_999
EpochMillis = Annotated[StrictInt, Field(gt=0, le=EPOCH_MS_MAX)]


class CreateRoomRequest(Strict):
    """POST /rooms body (OpenVidu Meet MeetRoomOptions)."""

    roomName: Annotated[str, Field(min_length=1, max_length=ROOM_NAME_MAX), Readable] = "Room"
    autoDeletionDate: EpochMillis | None = None
    autoDeletionPolicy: AutoDeletionPolicy = Field(default_factory=AutoDeletionPolicy)
    config: RoomConfig = Field(default_factory=RoomConfig)
    roles: Roles = Field(default_factory=Roles)
    access: AccessRequest = Field(default_factory=AccessRequest)
    meetingEndAction: MeetingEndAction = MeetingEndAction.NONE

    @model_validator(mode="before")
    @classmethod
    def _null_name_is_default(cls, data: Any) -> Any:
        # v3.8.0 allows `"roomName": null` and then names the room "Room".
        if isinstance(data, dict) and "roomName" in data and data["roomName"] is None:
            data = {**data, "roomName": "Room"}
        return data


class UpdateRoomConfigRequest(Strict):
    """PUT /rooms/{roomId}/config body."""

    config: RoomConfigPatch


class UpdateRoomStatusRequest(Strict):
    """PUT /rooms/{roomId}/status body."""

    status: Literal["open", "closed"]


class UpdateRoomSettingsRequest(Strict):
    """PUT /rooms/{roomId} body: name, auto-deletion and end action (meetplane extra)."""

    roomName: Annotated[str, Field(min_length=1, max_length=ROOM_NAME_MAX), Readable] | None = None
    autoDeletionDate: EpochMillis | None = None
    clearAutoDeletionDate: StrictBool = False
    autoDeletionPolicy: AutoDeletionPolicy | None = None
    meetingEndAction: MeetingEndAction | None = None


class AnonymousLink(BaseModel):
    """One anonymous access link as the rooms service stores it: the gateway builds the URL."""

    enabled: bool
    secret: str


class RoomRecord(BaseModel):
    """A room as the rooms service returns it over NATS.

    The gateway turns it into the OpenVidu Meet response (URLs from secrets,
    `fields` / `extraFields` selection); other services never see secrets, only
    their hashes (see `RoomState`).
    """

    roomId: str
    roomName: str
    creationDate: int
    autoDeletionDate: int | None = None
    autoDeletionPolicy: AutoDeletionPolicy | None = None
    config: RoomConfig
    roles: Roles
    anonymous: dict[Literal["moderator", "speaker", "recording"], AnonymousLink]
    status: RoomStatus
    meetingEndAction: MeetingEndAction
    pendingDeletion: bool = False
    owner: str | None = None
    userAccess: bool = False
    rolesUpdatedAt: int | None = None


class LinkHash(BaseModel):
    """An access link in an event: enabled flag and SHA-256 of its secret."""

    enabled: bool
    secretSha256: str


class RoomState(BaseModel):
    """The full room configuration carried by RoomCreated and RoomUpdated.

    Consumers (meetings, janitor) keep their own read model from it; secrets
    travel only as hashes so a subscriber cannot mint join links.
    """

    roomId: str
    roomName: str
    creationDate: int
    autoDeletionDate: int | None = None
    autoDeletionPolicy: AutoDeletionPolicy | None = None
    config: RoomConfig
    roles: Roles
    anonymous: dict[Literal["moderator", "speaker", "recording"], LinkHash]
    status: RoomStatus
    meetingEndAction: MeetingEndAction
    pendingDeletion: bool = False
    owner: str | None = None
    userAccess: bool = False
