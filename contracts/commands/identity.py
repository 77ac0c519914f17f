"""Commands of the identity service (`meetplane.cmd.identity.<verb>`).

The gateway is the only caller.  Passwords travel in these commands (over the
NATS connection, TLS in production) exactly once per request and are hashed on
arrival; replies never carry a password hash, an API key hash or a whole API
key except `create_api_key`'s answer.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from contracts.identity import (
    AddMemberRequest,
    CreateUserRequest,
    MemberRole,
    Password,
    UpdateMemberRequest,
    UserRole,
)

SERVICE = "identity"

NameMatchMode = Literal["exact", "prefix", "partial", "regex"]
MaxItems = Annotated[int, Field(ge=1, le=100)]
Ids = Annotated[list[str], Field(min_length=1, max_length=100)]


class Actor(BaseModel):
    """Who asks: a signed-in user's id, or None for an API key (self-protection rules)."""

    actorUserId: str | None = None


class CreateUser(BaseModel):
    """Create a user (verb `create_user`)."""

    request: CreateUserRequest


class UserRef(Actor):
    """Address one user (verbs `get_user`, `delete_user`)."""

    userId: str


class ListUsers(BaseModel):
    """List users with filters and cursor pagination (verb `list_users`)."""

    userId: str | None = None
    name: str | None = None
    nameMatchMode: NameMatchMode = "exact"
    nameCaseInsensitive: bool = False
    role: UserRole | None = None
    maxItems: MaxItems = 10
    nextPageToken: str | None = None
    sortField: Literal["name", "registrationDate"] = "registrationDate"
    sortOrder: Literal["asc", "desc"] = "desc"


class BulkDeleteUsers(Actor):
    """Delete several users (verb `bulk_delete_users`)."""

    userIds: Ids


class BulkOutcome(BaseModel):
    """Which ids were deleted and which failed, with why."""

    deleted: list[str] = Field(default_factory=list)
    failed: list[dict[str, str]] = Field(default_factory=list)


class ResetPassword(Actor):
    """An admin sets another user's password (verb `reset_password`)."""

    userId: str
    newPassword: Password


class UpdateRole(Actor):
    """An admin changes another user's role (verb `update_role`)."""

    userId: str
    role: UserRole


class ChangePassword(BaseModel):
    """A signed-in user changes their own password (verb `change_password`).

    Every session of the user ends; the reply opens a new one.
    """

    userId: str
    currentPassword: str
    newPassword: Password


class Login(BaseModel):
    """Check a user's password and open a session (verb `login`)."""

    userId: str
    password: str


class Session(BaseModel):
    """An open session: the gateway signs tokens carrying `sessionId`."""

    userId: str
    role: UserRole
    sessionId: str
    expiresAt: int
    mustChangePassword: bool = False


class SessionRef(BaseModel):
    """Address a session (verbs `refresh`, `logout`)."""

    userId: str
    sessionId: str


class CreateApiKey(BaseModel):
    """Create an API key (verb `create_api_key`)."""


class ApiKeyRef(BaseModel):
    """Address one API key (verb `revoke_api_key`)."""

    keyId: str


class VerifyApiKey(BaseModel):
    """Is this key valid? (verb `verify_api_key`)."""

    key: Annotated[str, Field(min_length=1, max_length=200)]


class ApiKeyVerdict(BaseModel):
    """The answer to `verify_api_key`."""

    valid: bool
    keyId: str | None = None


class AddMember(BaseModel):
    """Add a member to a room (verb `add_member`)."""

    roomId: str
    request: AddMemberRequest


class MemberRef(BaseModel):
    """Address one member (verbs `get_member`, `remove_member`)."""

    roomId: str
    memberId: str


class UpdateMember(BaseModel):
    """Change a member's base role or permission overrides (verb `update_member`)."""

    roomId: str
    memberId: str
    request: UpdateMemberRequest


class ListMembers(BaseModel):
    """List a room's members (verb `list_members`)."""

    roomId: str
    name: str | None = None
    nameMatchMode: NameMatchMode = "exact"
    nameCaseInsensitive: bool = False
    baseRole: MemberRole | None = None
    type: Literal["user", "identified_guest"] | None = None
    maxItems: MaxItems = 10
    nextPageToken: str | None = None
    sortField: Literal["name", "membershipDate"] = "membershipDate"
    sortOrder: Literal["asc", "desc"] = "desc"


class BulkRemoveMembers(BaseModel):
    """Remove several members of a room (verb `bulk_remove_members`)."""

    roomId: str
    memberIds: Ids


class MemberBySecret(BaseModel):
    """The identified guest whose access secret this is (verb `member_by_secret`)."""

    roomId: str
    secret: Annotated[str, Field(min_length=1, max_length=200)]


class MemberOf(BaseModel):
    """The member record of a user in a room (verb `member_of`)."""

    roomId: str
    userId: str


class RoomsOfUser(BaseModel):
    """Ids of the rooms a user is a member of (verb `rooms_of_user`); their member
    records with `memberships_of_user`."""

    userId: str
