"""Thin entrypoints of the identity service: NATS commands and consumed room events."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from eventsourcing.persistence import Tracking
from faststream.nats import NatsBroker

from contracts.commands import ErrorCode, Page
from contracts.commands import identity as cmd
from contracts.events import subject_of
from contracts.identity import ApiKeyRecord, CreatedApiKey, RoomMemberRecord, UserRecord
from services.identity.application import IdentityApplication
from services.identity.domain import (
    ApiKeyNotFound,
    Forbidden,
    InvalidCredentials,
    InvalidIdentityRequest,
    InvalidPassword,
    MemberConflict,
    MemberNotFound,
    SessionInvalid,
    UserConflict,
    UserNotFound,
)
from services.identity.projection import IdentityView
from services.runtime.commands import CommandRouter
from services.runtime.consumer import Consumed
from services.runtime.logging import get_logger
from services.runtime.projection import Projection
from services.runtime.rpc import call

log = get_logger("meetplane.identity")
T = TypeVar("T")

# What the identity service consumes: deleted rooms (their members go with them).
CONSUMED_SUBJECTS = [subject_of("RoomDeleted")]

ERRORS: dict[type[Exception], ErrorCode] = {
    UserNotFound: ErrorCode.NOT_FOUND,
    MemberNotFound: ErrorCode.NOT_FOUND,
    ApiKeyNotFound: ErrorCode.NOT_FOUND,
    UserConflict: ErrorCode.CONFLICT,
    MemberConflict: ErrorCode.CONFLICT,
    Forbidden: ErrorCode.FORBIDDEN,
    InvalidCredentials: ErrorCode.UNAUTHORIZED,
    SessionInvalid: ErrorCode.UNAUTHORIZED,
    InvalidPassword: ErrorCode.INVALID,
    InvalidIdentityRequest: ErrorCode.INVALID,
}


class IdentityHandlers:
    """Binds the identity application to NATS."""

    def __init__(
        self,
        app: IdentityApplication,
        view: IdentityView,
        projection: Projection,
        broker: NatsBroker,
        command_timeout: float = 5.0,
    ) -> None:
        self.app = app
        self.view = view
        self.projection = projection
        self.broker = broker
        self.timeout = command_timeout

    async def _read(self, query: Callable[..., T], *args: Any) -> T:
        """A view query that sees every commit made before it (read-your-writes)."""
        await self.projection.wait_caught_up()
        return await asyncio.to_thread(query, *args)

    # ---- users -------------------------------------------------------------------------

    async def create_user(self, request: cmd.CreateUser) -> UserRecord:
        record = await asyncio.to_thread(self.app.create_user, request.request)
        log.info("user.created", user_id=record.userId, role=record.role.value)
        return record

    async def get_user(self, request: cmd.UserRef) -> UserRecord:
        return await asyncio.to_thread(self.app.get_user, request.userId)

    async def list_users(self, request: cmd.ListUsers) -> Page:
        items, token = await self._read(self.view.list_users, request)
        return Page(
            items=items,
            nextPageToken=token,
            isTruncated=token is not None,
            maxItems=request.maxItems,
        )

    async def delete_user(self, request: cmd.UserRef) -> dict[str, Any]:
        await asyncio.to_thread(self.app.delete_user, request.userId, request.actorUserId)
        for room_id in await self._read(self.view.rooms_of_user, request.userId):
            with contextlib.suppress(MemberNotFound):  # removed concurrently
                await asyncio.to_thread(
                    self.app.remove_member, room_id, request.userId, "user_deleted"
                )
        log.info("user.deleted", user_id=request.userId)
        return {"userId": request.userId}

    async def bulk_delete_users(self, request: cmd.BulkDeleteUsers) -> cmd.BulkOutcome:
        outcome = cmd.BulkOutcome()
        for user_id in dict.fromkeys(request.userIds):
            reply = await self.router.dispatch(
                "delete_user",
                cmd.UserRef,
                self.delete_user,
                {"userId": user_id, "actorUserId": request.actorUserId},
            )
            if reply.ok:
                outcome.deleted.append(user_id)
            else:
                assert reply.error is not None
                outcome.failed.append({"userId": user_id, "error": reply.error.message})
        return outcome

    async def reset_password(self, request: cmd.ResetPassword) -> dict[str, Any]:
        await asyncio.to_thread(
            self.app.reset_password, request.userId, request.newPassword, request.actorUserId
        )
        log.info("user.password_reset", user_id=request.userId)
        return {"userId": request.userId}

    async def update_role(self, request: cmd.UpdateRole) -> UserRecord:
        record = await asyncio.to_thread(
            self.app.update_role, request.userId, request.role, request.actorUserId
        )
        log.info("user.role_changed", user_id=request.userId, role=request.role.value)
        return record

    # ---- sessions -------------------------------------------------------------------------

    async def login(self, request: cmd.Login) -> cmd.Session:
        session = await asyncio.to_thread(self.app.login, request.userId, request.password)
        log.info("user.signed_in", user_id=session.userId)
        return session

    async def refresh(self, request: cmd.SessionRef) -> cmd.Session:
        return await asyncio.to_thread(self.app.refresh, request.userId, request.sessionId)

    async def logout(self, request: cmd.SessionRef) -> dict[str, Any]:
        await asyncio.to_thread(self.app.logout, request.userId, request.sessionId)
        log.info("user.signed_out", user_id=request.userId)
        return {}

    async def change_password(self, request: cmd.ChangePassword) -> cmd.Session:
        session = await asyncio.to_thread(
            self.app.change_password, request.userId, request.currentPassword, request.newPassword
        )
        log.info("user.password_changed", user_id=request.userId)
        return session

    # ---- API keys ---------------------------------------------------------------------------

    async def create_api_key(self, _: cmd.CreateApiKey) -> CreatedApiKey:
        created = await asyncio.to_thread(self.app.create_api_key)
        log.info("api_key.created", key_id=created.keyId)
        return created

    async def list_api_keys(self, _: cmd.CreateApiKey) -> list[dict[str, Any]]:
        keys = await self._read(self.view.api_keys)
        return [k.model_dump() for k in keys]

    async def revoke_api_key(self, request: cmd.ApiKeyRef) -> ApiKeyRecord:
        aggregate = await self._read(self.view.api_key_aggregate, request.keyId)
        if aggregate is None:
            raise ApiKeyNotFound(f'API key "{request.keyId}" not found')
        record = await asyncio.to_thread(self.app.revoke_api_key, uuid.UUID(aggregate))
        log.info("api_key.revoked", key_id=request.keyId)
        return record

    async def revoke_all_api_keys(self, _: cmd.CreateApiKey) -> list[str]:
        revoked = []
        for key in await self._read(self.view.api_keys):
            await self.revoke_api_key(cmd.ApiKeyRef(keyId=key.keyId))
            revoked.append(key.keyId)
        return revoked

    async def verify_api_key(self, request: cmd.VerifyApiKey) -> cmd.ApiKeyVerdict:
        key_id = await asyncio.to_thread(self.app.verify_api_key, request.key)
        return cmd.ApiKeyVerdict(valid=key_id is not None, keyId=key_id)

    # ---- room members ------------------------------------------------------------------------

    async def _room_owner(self, room_id: str) -> str | None:
        """Ask the rooms service (it owns rooms): the room must exist; who owns it."""
        room = await call(self.broker, "rooms", "get", {"roomId": room_id}, timeout=self.timeout)
        owner: str | None = room.get("owner")
        return owner

    async def add_member(self, request: cmd.AddMember) -> RoomMemberRecord:
        owner = await self._room_owner(request.roomId)
        member = await asyncio.to_thread(
            self.app.add_member, request.roomId, request.request, owner
        )
        log.info("room_member.added", room_id=request.roomId, member_id=member.memberId)
        return member

    async def get_member(self, request: cmd.MemberRef) -> RoomMemberRecord:
        return await asyncio.to_thread(self.app.get_member, request.roomId, request.memberId)

    async def update_member(self, request: cmd.UpdateMember) -> RoomMemberRecord:
        return await asyncio.to_thread(
            self.app.update_member, request.roomId, request.memberId, request.request
        )

    async def remove_member(self, request: cmd.MemberRef) -> dict[str, Any]:
        await asyncio.to_thread(self.app.remove_member, request.roomId, request.memberId)
        log.info("room_member.removed", room_id=request.roomId, member_id=request.memberId)
        return {"memberId": request.memberId}

    async def bulk_remove_members(self, request: cmd.BulkRemoveMembers) -> cmd.BulkOutcome:
        outcome = cmd.BulkOutcome()
        for member_id in dict.fromkeys(request.memberIds):
            reply = await self.router.dispatch(
                "remove_member",
                cmd.MemberRef,
                self.remove_member,
                {"roomId": request.roomId, "memberId": member_id},
            )
            if reply.ok:
                outcome.deleted.append(member_id)
            else:
                assert reply.error is not None
                outcome.failed.append({"memberId": member_id, "error": "Room member not found"})
        return outcome

    async def list_members(self, request: cmd.ListMembers) -> Page:
        await self._room_owner(request.roomId)  # 404 for a room that does not exist
        items, token = await self._read(self.view.list_members, request)
        return Page(
            items=items,
            nextPageToken=token,
            isTruncated=token is not None,
            maxItems=request.maxItems,
        )

    async def member_by_secret(self, request: cmd.MemberBySecret) -> dict[str, Any]:
        member = await self._read(self.view.member_by_secret, request.roomId, request.secret)
        if member is None:
            raise MemberNotFound("no identified guest of this room has that secret")
        return member

    async def member_of(self, request: cmd.MemberOf) -> RoomMemberRecord:
        return await asyncio.to_thread(self.app.get_member, request.roomId, request.userId)

    async def rooms_of_user(self, request: cmd.RoomsOfUser) -> list[str]:
        return await self._read(self.view.rooms_of_user, request.userId)

    async def memberships_of_user(self, request: cmd.RoomsOfUser) -> list[dict[str, Any]]:
        return await self._read(self.view.memberships_of_user, request.userId)

    # ---- consumed room events ----------------------------------------------------------------

    async def process_events(self, batch: Sequence[Consumed], position: Tracking) -> None:
        """The `identity-events` consumer: a deleted room takes its member list with it."""
        members: list[tuple[str, str]] = []
        for consumed in batch:
            room_id = consumed.envelope.data["roomId"]
            members += [(room_id, m) for m in await self._read(self.view.members_of_room, room_id)]
        await asyncio.to_thread(self.app.remove_members, members, "room_deleted", position)

    # ---- wiring ---------------------------------------------------------------------------------

    def register(self, router: CommandRouter) -> None:
        """Answer the identity commands on `router`."""
        self.router = router
        r = router
        r.register("create_user", cmd.CreateUser, self.create_user)
        r.register("get_user", cmd.UserRef, self.get_user)
        r.register("list_users", cmd.ListUsers, self.list_users)
        r.register("delete_user", cmd.UserRef, self.delete_user)
        r.register("bulk_delete_users", cmd.BulkDeleteUsers, self.bulk_delete_users)
        r.register("reset_password", cmd.ResetPassword, self.reset_password)
        r.register("update_role", cmd.UpdateRole, self.update_role)
        r.register("login", cmd.Login, self.login)
        r.register("refresh", cmd.SessionRef, self.refresh)
        r.register("logout", cmd.SessionRef, self.logout)
        r.register("change_password", cmd.ChangePassword, self.change_password)
        r.register("create_api_key", cmd.CreateApiKey, self.create_api_key)
        r.register("list_api_keys", cmd.CreateApiKey, self.list_api_keys)
        r.register("revoke_api_key", cmd.ApiKeyRef, self.revoke_api_key)
        r.register("revoke_all_api_keys", cmd.CreateApiKey, self.revoke_all_api_keys)
        r.register("verify_api_key", cmd.VerifyApiKey, self.verify_api_key)
        r.register("add_member", cmd.AddMember, self.add_member)
        r.register("get_member", cmd.MemberRef, self.get_member)
        r.register("update_member", cmd.UpdateMember, self.update_member)
        r.register("remove_member", cmd.MemberRef, self.remove_member)
        r.register("bulk_remove_members", cmd.BulkRemoveMembers, self.bulk_remove_members)
        r.register("list_members", cmd.ListMembers, self.list_members)
        r.register("member_by_secret", cmd.MemberBySecret, self.member_by_secret)
        r.register("member_of", cmd.MemberOf, self.member_of)
        r.register("rooms_of_user", cmd.RoomsOfUser, self.rooms_of_user)
        r.register("memberships_of_user", cmd.RoomsOfUser, self.memberships_of_user)
