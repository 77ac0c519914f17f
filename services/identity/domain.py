"""Identity aggregates: users (with their sessions), API keys and room members. No I/O.

Secrets reach these aggregates only as hashes (passwords: argon2, API keys:
SHA-256 of a high-entropy key) or as generated values the caller passes in
(identified guests' access secrets, session ids), so replaying the log
rebuilds exactly the same state.
"""

from __future__ import annotations

import uuid
from typing import Any

from eventsourcing.domain import Aggregate, event

from services.runtime.errors import DomainError

USER_NAMESPACE = uuid.UUID("9d3f6a52-1c3e-4a8e-8f55-2b1c7e0d4a10")
API_KEY_NAMESPACE = uuid.UUID("4e2b8c17-6d0a-4f3b-9a21-7c5e1d2f3b40")
MEMBER_NAMESPACE = uuid.UUID("b7a1c9e4-2f6d-4c8b-8e3a-5d9f0a1b2c60")


class IdentityError(DomainError):
    """Base of the identity service's domain errors."""

    error = "identity_error"


class UserNotFound(IdentityError):
    """No such user (or deleted)."""

    error = "user_not_found"


class UserConflict(IdentityError):
    """The user id is taken."""

    error = "user_already_exists"


class Forbidden(IdentityError):
    """The operation is not allowed on this user (the root admin, or oneself)."""

    error = "forbidden"


class InvalidCredentials(IdentityError):
    """Wrong user id or password (never says which)."""

    error = "invalid_credentials"


class InvalidPassword(IdentityError):
    """The current password given to change-password is wrong."""

    error = "invalid_password"


class SessionInvalid(IdentityError):
    """The session is over (logout, password change, deletion) or unknown."""

    error = "invalid_refresh_token"


class ApiKeyNotFound(IdentityError):
    """No such API key."""

    error = "api_key_not_found"


class MemberNotFound(IdentityError):
    """No such member in the room."""

    error = "room_member_not_found"


class MemberConflict(IdentityError):
    """The user is already a member, or may not be one (owner, admin)."""

    error = "room_member_conflict"


class InvalidIdentityRequest(IdentityError):
    """A request value breaks an identity rule."""

    error = "invalid_request"


def user_aggregate_id(user_id: str) -> uuid.UUID:
    """Users are addressed by their user id."""
    return uuid.uuid5(USER_NAMESPACE, user_id)


def api_key_aggregate_id(key_sha256: str) -> uuid.UUID:
    """API keys are found by the hash of the key presented (O(1) verification)."""
    return uuid.uuid5(API_KEY_NAMESPACE, key_sha256)


def member_aggregate_id(room_id: str, member_id: str) -> uuid.UUID:
    """Members are addressed by room and member id."""
    return uuid.uuid5(MEMBER_NAMESPACE, f"{room_id}/{member_id}")


class User(Aggregate):
    """A user account, its role, its password hash and its open sessions."""

    class Event(Aggregate.Event):
        """Base of user domain events."""

    @event("Created")
    def __init__(
        self,
        user_id: str,
        name: str,
        role: str,
        password_hash: str,
        registration_date: int,
        root: bool = False,
        must_change_password: bool = False,
    ) -> None:
        self.user_id = user_id
        self.name = name
        self.role = role
        self.password_hash = password_hash
        self.registration_date = registration_date
        self.role_updated_at = registration_date
        self.root = root
        self.must_change_password = must_change_password
        self.sessions: dict[str, int] = {}  # session id -> expiry (ms)
        self.deleted = False

    @classmethod
    def create_id(cls, user_id: str, **_: Any) -> uuid.UUID:
        """Aggregate ids are derived from user ids."""
        return user_aggregate_id(user_id)

    def require_live(self) -> None:
        """Refuse commands on a deleted user."""
        if self.deleted:
            raise UserNotFound(f'User "{self.user_id}" not found')

    def _refuse_self_or_root(self, actor: str | None, what: str) -> None:
        if self.root:
            raise Forbidden(f"cannot {what} the root admin user")
        if actor is not None and actor == self.user_id:
            raise Forbidden(f"cannot {what} your own user account")

    # ---- sessions ------------------------------------------------------------------

    def open_session(self, session_id: str, expires_at: int, now_ms: int) -> None:
        """A successful sign-in; sessions past their expiry are forgotten on the way."""
        self.require_live()
        expired = [s for s, until in self.sessions.items() if until <= now_ms]
        self._session_opened(session_id=session_id, expires_at=expires_at, expired=expired)

    @event("SessionOpened")
    def _session_opened(self, session_id: str, expires_at: int, expired: list[str]) -> None:
        for old in expired:
            self.sessions.pop(old, None)
        self.sessions[session_id] = expires_at

    def session_valid(self, session_id: str, now_ms: int) -> bool:
        """Whether a refresh with this session may mint an access token."""
        until = self.sessions.get(session_id)
        return not self.deleted and until is not None and until > now_ms

    def close_session(self, session_id: str) -> None:
        """Logout: this session ends (no-op when it already has)."""
        if session_id in self.sessions:
            self._sessions_closed(session_ids=[session_id], reason="logout")

    @event("SessionsClosed")
    def _sessions_closed(self, session_ids: list[str], reason: str) -> None:
        for session_id in session_ids:
            self.sessions.pop(session_id, None)

    def _close_all_sessions(self, reason: str) -> None:
        if self.sessions:
            self._sessions_closed(session_ids=sorted(self.sessions), reason=reason)

    # ---- changes ---------------------------------------------------------------------

    def change_password(self, password_hash: str) -> None:
        """The user's own change: every session ends (the caller opens a new one)."""
        self.require_live()
        self._close_all_sessions("password_changed")
        self._password_set(password_hash=password_hash, by_admin=False)

    def reset_password(self, password_hash: str, actor: str | None) -> None:
        """An admin sets the password of another user; their sessions end."""
        self.require_live()
        if actor is not None and actor == self.user_id:
            raise Forbidden("cannot reset your own password; use change-password")
        self._close_all_sessions("password_reset")
        self._password_set(password_hash=password_hash, by_admin=True)

    @event("PasswordSet")
    def _password_set(self, password_hash: str, by_admin: bool) -> None:
        self.password_hash = password_hash
        self.must_change_password = by_admin

    def change_role(self, role: str, actor: str | None, now_ms: int) -> None:
        """Give the user another role."""
        self.require_live()
        self._refuse_self_or_root(actor, "change the role of")
        if role != self.role:
            self._role_changed(role=role, at=now_ms)

    @event("RoleChanged")
    def _role_changed(self, role: str, at: int) -> None:
        self.role = role
        self.role_updated_at = at

    def delete(self, actor: str | None, now_ms: int) -> None:
        """Delete the account; every session ends with it."""
        self.require_live()
        self._refuse_self_or_root(actor, "delete")
        self._deleted(at=now_ms)

    @event("Deleted")
    def _deleted(self, at: int) -> None:
        self.deleted = True
        self.deleted_at = at
        self.sessions = {}


class ApiKey(Aggregate):
    """An API key, known by the SHA-256 of its value and a non-secret prefix."""

    class Event(Aggregate.Event):
        """Base of API key domain events."""

    @event("Created")
    def __init__(self, key_id: str, key_sha256: str, prefix: str, creation_date: int) -> None:
        self.key_id = key_id
        self.key_sha256 = key_sha256
        self.prefix = prefix
        self.creation_date = creation_date
        self.revoked = False

    @classmethod
    def create_id(cls, key_sha256: str, **_: Any) -> uuid.UUID:
        """Aggregate ids are derived from the key's hash."""
        return api_key_aggregate_id(key_sha256)

    def revoke(self, now_ms: int) -> None:
        """Delete the key (no-op when already revoked)."""
        if not self.revoked:
            self._revoked(at=now_ms)

    @event("Revoked")
    def _revoked(self, at: int) -> None:
        self.revoked = True
        self.revoked_at = at


class RoomMember(Aggregate):
    """A user or identified guest with its own permissions in one room."""

    class Event(Aggregate.Event):
        """Base of room member domain events."""

    @event("Added")
    def __init__(
        self,
        room_id: str,
        member_id: str,
        member_type: str,
        user_id: str | None,
        name: str,
        base_role: str,
        custom_permissions: dict[str, bool],
        membership_date: int,
        secret: str | None,
    ) -> None:
        self._apply_added(
            member_type, user_id, name, base_role, custom_permissions, membership_date, secret
        )
        self.room_id = room_id
        self.member_id = member_id

    def _apply_added(
        self,
        member_type: str,
        user_id: str | None,
        name: str,
        base_role: str,
        custom_permissions: dict[str, bool],
        membership_date: int,
        secret: str | None,
    ) -> None:
        self.member_type = member_type
        self.user_id = user_id
        self.name = name
        self.base_role = base_role
        self.custom_permissions = dict(custom_permissions)
        self.membership_date = membership_date
        self.permissions_updated_at = membership_date
        self.secret = secret
        self.removed = False

    @classmethod
    def create_id(cls, room_id: str, member_id: str, **_: Any) -> uuid.UUID:
        """Aggregate ids are derived from room and member id."""
        return member_aggregate_id(room_id, member_id)

    def readd(
        self,
        name: str,
        base_role: str,
        custom_permissions: dict[str, bool],
        now_ms: int,
    ) -> None:
        """A removed user member comes back (same member id)."""
        if not self.removed:
            raise MemberConflict(
                f'User "{self.user_id}" is already a member of room "{self.room_id}"'
            )
        self._readded(
            name=name, base_role=base_role, custom_permissions=custom_permissions, at=now_ms
        )

    @event("Readded")
    def _readded(
        self, name: str, base_role: str, custom_permissions: dict[str, bool], at: int
    ) -> None:
        self._apply_added(
            self.member_type, self.user_id, name, base_role, custom_permissions, at, self.secret
        )

    def require_present(self) -> None:
        """Refuse commands on a removed member."""
        if self.removed:
            raise MemberNotFound(
                f'Room member "{self.member_id}" does not exist in room "{self.room_id}"'
            )

    def update(
        self, base_role: str | None, custom_permissions: dict[str, bool] | None, now_ms: int
    ) -> None:
        """Change the base role and/or replace the overrides."""
        self.require_present()
        role = base_role or self.base_role
        custom = self.custom_permissions if custom_permissions is None else custom_permissions
        if (role, custom) != (self.base_role, self.custom_permissions):
            self._updated(base_role=role, custom_permissions=dict(custom), at=now_ms)

    @event("Updated")
    def _updated(self, base_role: str, custom_permissions: dict[str, bool], at: int) -> None:
        self.base_role = base_role
        self.custom_permissions = custom_permissions
        self.permissions_updated_at = at

    def remove(self, reason: str, now_ms: int) -> None:
        """Take the member off the room."""
        self.require_present()
        self._removed(reason=reason, at=now_ms)

    @event("Removed")
    def _removed(self, reason: str, at: int) -> None:
        self.removed = True
        self.removed_at = at
