"""The identity Application: load, call, save, return plain values.

Synchronous like the eventsourcing library; handlers call it through
`asyncio.to_thread`.  Password hashing (argon2) happens here, never in the
domain, and hashes never leave this module except into the event store.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from typing import Any, cast

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError, Tracking

from contracts.commands.identity import Session
from contracts.identity import (
    API_KEY_PREFIX,
    AddMemberRequest,
    ApiKeyRecord,
    CreatedApiKey,
    CreateUserRequest,
    RoomMemberRecord,
    UpdateMemberRequest,
    UserRecord,
    UserRole,
)
from services.identity.domain import (
    ApiKey,
    InvalidCredentials,
    InvalidPassword,
    MemberConflict,
    MemberNotFound,
    RoomMember,
    SessionInvalid,
    User,
    UserConflict,
    UserNotFound,
    api_key_aggregate_id,
    member_aggregate_id,
    user_aggregate_id,
)
from services.runtime.clock import Clock, SystemClock
from services.runtime.store import ServiceApplication, retries_on_conflict


def key_sha256(key: str) -> str:
    """SHA-256 hex of an API key: enough for a 190-bit random secret, and O(1) to look up."""
    return hashlib.sha256(key.encode()).hexdigest()


def user_record(user: User) -> UserRecord:
    """The wire shape of a user (no hash, no sessions)."""
    return UserRecord(
        userId=user.user_id,
        name=user.name,
        registrationDate=user.registration_date,
        role=UserRole(user.role),
        roleUpdatedAt=user.role_updated_at,
    )


def member_record(member: RoomMember) -> RoomMemberRecord:
    """The wire shape of a member for the gateway (with the guest's secret)."""
    return RoomMemberRecord.model_validate(
        {
            "memberId": member.member_id,
            "roomId": member.room_id,
            "type": member.member_type,
            "name": member.name,
            "userId": member.user_id,
            "membershipDate": member.membership_date,
            "baseRole": member.base_role,
            "customPermissions": member.custom_permissions,
            "permissionsUpdatedAt": member.permissions_updated_at,
            "secret": member.secret,
        }
    )


class IdentityApplication(ServiceApplication):
    """Users, sessions, API keys and room members over the identity event store."""

    name = "identity"
    snapshotting_intervals = {User: 50}

    def __init__(
        self,
        env: dict[str, str] | None = None,
        clock: Clock | None = None,
        session_ttl_ms: int = 7 * 24 * 3600 * 1000,
        hasher: PasswordHasher | None = None,
    ) -> None:
        super().__init__(env)
        self.clock: Clock = clock or SystemClock()
        self.session_ttl_ms = session_ttl_ms
        self.hasher = hasher or PasswordHasher()
        # A hash to verify against when the user does not exist, so that a wrong user id
        # takes as long as a wrong password (no user enumeration by timing).
        self._dummy_hash = self.hasher.hash(secrets.token_urlsafe(16))

    # ---- loading ------------------------------------------------------------------------

    def load(self, aggregate: uuid.UUID, version: int | None = None) -> Any:
        """Any identity aggregate by id, optionally at a version (outbox, projections)."""
        return self.repository.get(aggregate, version=version)

    def _find_user(self, user_id: str) -> User | None:
        try:
            return cast(User, self.repository.get(user_aggregate_id(user_id)))
        except AggregateNotFoundError:
            return None

    def _user(self, user_id: str) -> User:
        user = self._find_user(user_id)
        if user is None or user.deleted:
            raise UserNotFound(f'User "{user_id}" not found')
        return user

    def _find_member(self, room_id: str, member_id: str) -> RoomMember | None:
        try:
            return cast(RoomMember, self.repository.get(member_aggregate_id(room_id, member_id)))
        except AggregateNotFoundError:
            return None

    def _member(self, room_id: str, member_id: str) -> RoomMember:
        member = self._find_member(room_id, member_id)
        if member is None or member.removed:
            raise MemberNotFound(f'Room member "{member_id}" does not exist in room "{room_id}"')
        return member

    # ---- users ----------------------------------------------------------------------------

    def ensure_root_admin(self, user_id: str, password: str) -> bool:
        """Create the first admin if missing; True when it was created now."""
        if self._find_user(user_id) is not None:
            return False
        now = self.clock.now_ms()
        user = User(
            user_id=user_id,
            name="Admin",
            role=UserRole.ADMIN.value,
            password_hash=self.hasher.hash(password),
            registration_date=now,
            root=True,
        )
        try:
            self.save(user)
        except IntegrityError:
            return False  # another replica created it first
        return True

    def create_user(self, request: CreateUserRequest) -> UserRecord:
        """A new account; the user id must be free (a deleted id stays taken)."""
        if self._find_user(request.userId) is not None:
            raise UserConflict(f'User "{request.userId}" already exists')
        user = User(
            user_id=request.userId,
            name=request.name,
            role=request.role.value,
            password_hash=self.hasher.hash(request.password),
            registration_date=self.clock.now_ms(),
        )
        try:
            self.save(user)
        except IntegrityError:
            raise UserConflict(f'User "{request.userId}" already exists') from None
        return user_record(user)

    def get_user(self, user_id: str) -> UserRecord:
        """One live user."""
        return user_record(self._user(user_id))

    @retries_on_conflict
    def delete_user(self, user_id: str, actor: str | None) -> None:
        """Delete the account (its memberships are removed by the handler)."""
        user = self._user(user_id)
        user.delete(actor, self.clock.now_ms())
        self.save(user)

    @retries_on_conflict
    def reset_password(self, user_id: str, new_password: str, actor: str | None) -> None:
        """An admin sets another user's password."""
        user = self._user(user_id)
        user.reset_password(self.hasher.hash(new_password), actor)
        self.save(user)

    @retries_on_conflict
    def update_role(self, user_id: str, role: UserRole, actor: str | None) -> UserRecord:
        """An admin changes another user's role."""
        user = self._user(user_id)
        user.change_role(role.value, actor, self.clock.now_ms())
        self.save(user)
        return user_record(user)

    # ---- sessions ----------------------------------------------------------------------------

    def _verify(self, user: User | None, password: str) -> bool:
        try:
            return self.hasher.verify(user.password_hash if user else self._dummy_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    def _open_session(self, user: User) -> Session:
        now = self.clock.now_ms()
        session_id = uuid.uuid4().hex
        expires_at = now + self.session_ttl_ms
        user.open_session(session_id, expires_at, now)
        self.save(user)
        return Session(
            userId=user.user_id,
            role=UserRole(user.role),
            sessionId=session_id,
            expiresAt=expires_at,
            mustChangePassword=user.must_change_password,
        )

    def login(self, user_id: str, password: str) -> Session:
        """Check the password and open a session."""
        user = self._find_user(user_id)
        live = user is not None and not user.deleted
        if not self._verify(user if live else None, password) or not live:
            raise InvalidCredentials("Invalid user ID or password")
        assert user is not None
        return self.retry_on_conflict(lambda: self._open_session(self._user(user_id)))

    def refresh(self, user_id: str, session_id: str) -> Session:
        """A refresh token's session is still open: the user's current role."""
        user = self._find_user(user_id)
        now = self.clock.now_ms()
        if user is None or not user.session_valid(session_id, now):
            raise SessionInvalid("Invalid refresh token")
        return Session(
            userId=user.user_id,
            role=UserRole(user.role),
            sessionId=session_id,
            expiresAt=user.sessions[session_id],
            mustChangePassword=user.must_change_password,
        )

    @retries_on_conflict
    def logout(self, user_id: str, session_id: str) -> None:
        """End one session (no-op if it already ended or the user is gone)."""
        user = self._find_user(user_id)
        if user is not None and not user.deleted:
            user.close_session(session_id)
            self.save(user)

    def change_password(self, user_id: str, current: str, new: str) -> Session:
        """The user's own change: all sessions end, a new one opens."""
        user = self._user(user_id)
        if not self._verify(user, current):
            raise InvalidPassword("Invalid current password")
        new_hash = self.hasher.hash(new)

        def attempt() -> Session:
            fresh = self._user(user_id)
            fresh.change_password(new_hash)
            return self._open_session(fresh)

        return self.retry_on_conflict(attempt)

    # ---- API keys ----------------------------------------------------------------------------

    def create_api_key(self) -> CreatedApiKey:
        """A new random key; only its hash is stored."""
        key = API_KEY_PREFIX + secrets.token_urlsafe(32)
        digest = key_sha256(key)
        api_key = ApiKey(
            key_id=digest[:16],
            key_sha256=digest,
            prefix=key[: len(API_KEY_PREFIX) + 6],
            creation_date=self.clock.now_ms(),
        )
        self.save(api_key)
        return CreatedApiKey(
            keyId=api_key.key_id,
            prefix=api_key.prefix,
            creationDate=api_key.creation_date,
            key=key,
        )

    def verify_api_key(self, key: str) -> str | None:
        """The key's id if it is a live key, else None."""
        try:
            api_key = cast(ApiKey, self.repository.get(api_key_aggregate_id(key_sha256(key))))
        except AggregateNotFoundError:
            return None
        return None if api_key.revoked else api_key.key_id

    @retries_on_conflict
    def revoke_api_key(self, aggregate: uuid.UUID) -> ApiKeyRecord:
        """Delete one key (found through the keys view)."""
        api_key = cast(ApiKey, self.repository.get(aggregate))
        api_key.revoke(self.clock.now_ms())
        self.save(api_key)
        return ApiKeyRecord(
            keyId=api_key.key_id, prefix=api_key.prefix, creationDate=api_key.creation_date
        )

    # ---- room members --------------------------------------------------------------------------

    def add_member(
        self, room_id: str, request: AddMemberRequest, room_owner: str | None
    ) -> RoomMemberRecord:
        """Add a user (member id = user id) or an identified guest (fresh id and secret)."""
        now = self.clock.now_ms()
        custom = dict(request.customPermissions)
        if request.userId is not None:
            user = self._user(request.userId)
            if user.role == UserRole.ADMIN.value or user.user_id == room_owner:
                raise MemberConflict(
                    f'User "{user.user_id}" cannot be added as a member of room "{room_id}" '
                    "because they are the room owner or an admin",
                    error="room_member_cannot_be_owner_or_admin",
                )
            existing = self._find_member(room_id, user.user_id)
            if existing is not None:
                existing.readd(user.name, request.baseRole.value, custom, now)
                self.save(existing)
                return member_record(existing)
            member = RoomMember(
                room_id=room_id,
                member_id=user.user_id,
                member_type="user",
                user_id=user.user_id,
                name=user.name,
                base_role=request.baseRole.value,
                custom_permissions=custom,
                membership_date=now,
                secret=None,
            )
        else:
            assert request.name is not None
            member = RoomMember(
                room_id=room_id,
                member_id=f"ext-{secrets.token_hex(6)}",
                member_type="identified_guest",
                user_id=None,
                name=request.name,
                base_role=request.baseRole.value,
                custom_permissions=custom,
                membership_date=now,
                secret=secrets.token_urlsafe(16),
            )
        try:
            self.save(member)
        except IntegrityError:
            raise MemberConflict(
                f'User "{request.userId}" is already a member of room "{room_id}"'
            ) from None
        return member_record(member)

    def get_member(self, room_id: str, member_id: str) -> RoomMemberRecord:
        """One present member."""
        return member_record(self._member(room_id, member_id))

    @retries_on_conflict
    def update_member(
        self, room_id: str, member_id: str, request: UpdateMemberRequest
    ) -> RoomMemberRecord:
        """Change base role and/or overrides."""
        member = self._member(room_id, member_id)
        member.update(
            request.baseRole.value if request.baseRole else None,
            request.customPermissions,
            self.clock.now_ms(),
        )
        self.save(member)
        return member_record(member)

    @retries_on_conflict
    def remove_member(
        self,
        room_id: str,
        member_id: str,
        reason: str = "removed",
        tracking: Tracking | None = None,
    ) -> None:
        """Take a member off a room."""
        member = self._member(room_id, member_id)
        member.remove(reason, self.clock.now_ms())
        if tracking is None:
            self.save(member)
        else:
            self.save_tracked(member, tracking=tracking)

    def remove_members(
        self, members: list[tuple[str, str]], reason: str, tracking: Tracking
    ) -> None:
        """Remove many members and record `tracking` with them (a consumed event)."""

        def attempt() -> None:
            changed = []
            for room_id, member_id in members:
                member = self._find_member(room_id, member_id)
                if member is not None and not member.removed:
                    member.remove(reason, self.clock.now_ms())
                    changed.append(member)
            self.save_tracked(*changed, tracking=tracking)

        self.retry_on_conflict(attempt)
