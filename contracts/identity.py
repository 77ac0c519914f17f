"""Identity shapes that cross the wire (OpenVidu Meet v3.8.0 field names).

Users, API keys and room members as the identity service returns them over
NATS and the gateway returns them over HTTP.  Password hashes, API key hashes
and identified guests' secrets never appear in these models except where a
field says so (`RoomMemberRecord.secret` goes to the gateway only, which turns
it into the member's access URL).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

from contracts.rooms import Permissions
from contracts.text import Readable

USER_ID_PATTERN = r"^[a-z0-9_]+$"
PASSWORD_MIN = 5
# Every API key the identity service creates starts with this (the gateway does not
# ask the identity service about a key that does not).
API_KEY_PREFIX = "ovmeet-"
API_KEY_MAX_LENGTH = 200


class Strict(BaseModel):
    """Request-side models: unknown fields are an error."""

    model_config = ConfigDict(extra="forbid")


class UserRole(StrEnum):
    """v3.8.0 user roles."""

    ADMIN = "admin"
    ROOM_MANAGER = "room_manager"
    ROOM_MEMBER = "room_member"


class MemberRole(StrEnum):
    """A room member's base role."""

    MODERATOR = "moderator"
    SPEAKER = "speaker"


UserId = Annotated[str, Field(min_length=1, max_length=100, pattern=USER_ID_PATTERN)]
Password = Annotated[str, Field(min_length=PASSWORD_MIN, max_length=256)]
DisplayName = Annotated[str, Field(min_length=1, max_length=50), Readable]


class CreateUserRequest(Strict):
    """POST /users body."""

    userId: UserId
    name: DisplayName
    role: UserRole
    password: Password


class ResetPasswordRequest(Strict):
    """PUT /users/{userId}/password body."""

    newPassword: Password


class UpdateRoleRequest(Strict):
    """PUT /users/{userId}/role body."""

    role: UserRole


class ChangePasswordRequest(Strict):
    """POST /users/change-password body."""

    currentPassword: Annotated[str, Field(min_length=1, max_length=256)]
    newPassword: Password


class LoginRequest(Strict):
    """POST /auth/login body."""

    userId: Annotated[str, Field(min_length=1, max_length=100)]
    password: Annotated[str, Field(min_length=1, max_length=256)]


class UserRecord(BaseModel):
    """A user as the API shows it (MeetUser)."""

    userId: str
    name: str
    registrationDate: int
    role: UserRole
    roleUpdatedAt: int


def _known_permissions(value: dict[str, bool]) -> dict[str, bool]:
    unknown = sorted(set(value) - set(Permissions.model_fields))
    if unknown:
        raise ValueError(f"unknown permission(s): {', '.join(unknown)}")
    return value


class AddMemberRequest(Strict):
    """POST /rooms/{roomId}/members body: a user (`userId`) or an identified guest (`name`)."""

    userId: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    name: DisplayName | None = None
    baseRole: MemberRole
    customPermissions: dict[str, StrictBool] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _user_xor_name(self) -> AddMemberRequest:
        if (self.userId is None) == (self.name is None):
            raise ValueError("provide either userId (a user) or name (an identified guest)")
        _known_permissions(self.customPermissions)
        return self


class UpdateMemberRequest(Strict):
    """PUT /rooms/{roomId}/members/{memberId} body."""

    baseRole: MemberRole | None = None
    customPermissions: dict[str, StrictBool] | None = None

    @model_validator(mode="after")
    def _known(self) -> UpdateMemberRequest:
        if self.customPermissions is not None:
            _known_permissions(self.customPermissions)
        return self


class RoomMemberRecord(BaseModel):
    """A room member as the identity service returns it to the gateway.

    `secret` is the identified guest's access secret (None for users); the
    gateway turns it into `accessUrl` and never returns it on its own.
    """

    memberId: str
    roomId: str
    type: Literal["user", "identified_guest"]
    name: str
    userId: str | None = None
    membershipDate: int
    baseRole: MemberRole
    customPermissions: dict[str, bool] = Field(default_factory=dict)
    permissionsUpdatedAt: int
    secret: str | None = None


class ApiKeyRecord(BaseModel):
    """An API key as listed: its id, a recognisable prefix and its creation date."""

    keyId: str
    prefix: str
    creationDate: int


class CreatedApiKey(ApiKeyRecord):
    """The answer to creating a key: the only time the whole key is shown."""

    key: str
