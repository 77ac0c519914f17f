"""`/rooms/{roomId}/members…` (public API) and member tokens (internal API)."""

from __future__ import annotations

import re
import secrets
import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from contracts.commands import identity as cmd
from contracts.commands import meetings as meetings_cmd
from contracts.commands.meetings import ParticipantName
from contracts.identity import AddMemberRequest, MemberRole, UpdateMemberRequest
from services.gateway.api import PUBLIC_API
from services.gateway.auth import Principal, forbidden, principal
from services.gateway.errors import ApiError
from services.gateway.params import RoomIdPath
from services.gateway.permissions import member_permissions, role_permissions
from services.gateway.policy import user_room_access
from services.gateway.ratelimits import client_address, rate_limits
from services.gateway.rooms_view import parse_field_list
from services.gateway.rpc import Rpc, RpcDep
from services.gateway.schemas import (
    BulkMembersDeleted,
    Member,
    MemberList,
    MemberToken,
    Message,
    documented,
)
from services.gateway.tokens import MemberClaims, TokenService

router = APIRouter(prefix="/rooms/{roomId}/members", tags=["room members"])
token_router = APIRouter(prefix="/rooms/{roomId}/members/token", tags=["room members"])

MemberIdPath = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_\-]+$")]
MEMBER_FIELDS = {
    "memberId",
    "roomId",
    "type",
    "name",
    "membershipDate",
    "accessUrl",
    "baseRole",
    "customPermissions",
    "effectivePermissions",
    "permissionsUpdatedAt",
}
EXTRA_FIELDS = {"effectivePermissions"}
FieldsQuery = Annotated[str | None, Query(max_length=500)]
XFields = Annotated[str | None, Header(alias="X-Fields", max_length=500)]
XExtra = Annotated[str | None, Header(alias="X-ExtraFields", max_length=500)]


def shape_member(
    member: dict[str, Any],
    room: dict[str, Any],
    base_url: str,
    fields: set[str] | None = None,
    extra: set[str] | None = None,
) -> dict[str, Any]:
    """The v3.8.0 member representation (the guest secret only inside `accessUrl`)."""
    url = f"{base_url}/room/{member['roomId']}"
    if member.get("secret"):
        url += f"?secret={member['secret']}"
    shaped: dict[str, Any] = {
        "memberId": member["memberId"],
        "roomId": member["roomId"],
        "type": member["type"],
        "name": member["name"],
        "membershipDate": member["membershipDate"],
        "accessUrl": url,
        "baseRole": member["baseRole"],
        "customPermissions": member["customPermissions"],
        "permissionsUpdatedAt": member["permissionsUpdatedAt"],
    }
    if "effectivePermissions" in (extra or set()) | (fields or set()):
        shaped["effectivePermissions"] = member_permissions(room, member)
    if fields:
        shaped = {k: v for k, v in shaped.items() if k in fields}
    shaped["_extraFields"] = sorted(EXTRA_FIELDS)
    return shaped


def _selection(
    fields: str | None, extra: str | None, x_fields: str | None, x_extra: str | None
) -> tuple[set[str] | None, set[str] | None]:
    return (
        parse_field_list(fields or x_fields, MEMBER_FIELDS, "fields"),
        parse_field_list(extra or x_extra, EXTRA_FIELDS, "extraFields"),
    )


def _base(request: Request) -> str:
    base: str = request.app.state.settings.base_url()
    return base


async def _room(request: Request, rpc: Rpc, room_id: str) -> dict[str, Any]:
    cached: dict[str, Any] | None = getattr(request.state, "room_record", None)
    if cached is not None and cached.get("roomId") == room_id:
        return cached
    room: dict[str, Any] = await rpc.retrying("rooms", "get", {"roomId": room_id})
    request.state.room_record = room
    return room


@router.post("", summary="Add a member to a room", **documented(Member, 201, errors=(404, 409)))
async def add_member(
    roomId: RoomIdPath,
    body: AddMemberRequest,
    request: Request,
    response: Response,
    rpc: RpcDep,
    x_fields: XFields = None,
    x_extra: XExtra = None,
) -> dict[str, Any]:
    fields, extra = _selection(None, None, x_fields, x_extra)
    member = await rpc("identity", "add_member", cmd.AddMember(roomId=roomId, request=body))
    response.headers["Location"] = f"{PUBLIC_API}/rooms/{roomId}/members/{member['memberId']}"
    room = await _room(request, rpc, roomId)
    return shape_member(member, room, _base(request), fields, extra)


@router.get("", summary="List a room's members", **documented(MemberList, errors=(404,)))
async def list_members(
    roomId: RoomIdPath,
    request: Request,
    rpc: RpcDep,
    name: Annotated[str | None, Query(max_length=100)] = None,
    nameMatchMode: Literal["exact", "prefix", "partial", "regex"] = "exact",
    nameCaseInsensitive: bool = False,
    baseRole: MemberRole | None = None,
    type: Literal["user", "identified_guest"] | None = None,
    fields: FieldsQuery = None,
    extraFields: FieldsQuery = None,
    maxItems: Annotated[int, Query(ge=1, le=100)] = 10,
    nextPageToken: Annotated[str | None, Query(max_length=1000)] = None,
    sortField: Literal["name", "membershipDate"] = "membershipDate",
    sortOrder: Literal["asc", "desc"] = "desc",
    x_fields: XFields = None,
    x_extra: XExtra = None,
) -> dict[str, Any]:
    selected, extra = _selection(fields, extraFields, x_fields, x_extra)
    page = await rpc.retrying(
        "identity",
        "list_members",
        cmd.ListMembers(
            roomId=roomId,
            name=name,
            nameMatchMode=nameMatchMode,
            nameCaseInsensitive=nameCaseInsensitive,
            baseRole=baseRole,
            type=type,
            maxItems=maxItems,
            nextPageToken=nextPageToken,
            sortField=sortField,
            sortOrder=sortOrder,
        ),
    )
    room = await _room(request, rpc, roomId)
    members = [shape_member(m, room, _base(request), selected, extra) for m in page["items"]]
    for member in members:
        member.pop("_extraFields", None)
    return {
        "members": members,
        "_extraFields": sorted(EXTRA_FIELDS),
        "pagination": {k: page[k] for k in ("isTruncated", "nextPageToken", "maxItems")},
    }


@router.delete(
    "",
    summary="Remove several members",
    **documented(BulkMembersDeleted, 200, (400, BulkMembersDeleted), errors=(404,)),
)
async def bulk_remove_members(
    roomId: RoomIdPath,
    request: Request,
    response: Response,
    rpc: RpcDep,
    memberIds: Annotated[str, Query(min_length=1, max_length=10_000)],
) -> dict[str, Any]:
    ids = [i.strip() for i in memberIds.split(",") if i.strip()]
    if not ids or len(ids) > 100:
        raise ApiError.invalid("memberIds", "between 1 and 100 member ids")
    await _room(request, rpc, roomId)
    outcome = await rpc(
        "identity", "bulk_remove_members", cmd.BulkRemoveMembers(roomId=roomId, memberIds=ids)
    )
    if outcome["failed"]:
        response.status_code = 400
        message = f"{len(outcome['failed'])} room member(s) could not be deleted"
    else:
        message = "All room members deleted successfully"
    return {"message": message, **outcome}


@router.get("/{memberId}", summary="Get a room member", **documented(Member, errors=(404,)))
async def get_member(
    roomId: RoomIdPath,
    memberId: MemberIdPath,
    request: Request,
    rpc: RpcDep,
    fields: FieldsQuery = None,
    extraFields: FieldsQuery = None,
    x_fields: XFields = None,
    x_extra: XExtra = None,
) -> dict[str, Any]:
    selected, extra = _selection(fields, extraFields, x_fields, x_extra)
    member = await rpc.retrying("identity", "get_member", {"roomId": roomId, "memberId": memberId})
    room = await _room(request, rpc, roomId)
    return shape_member(member, room, _base(request), selected, extra)


@router.put("/{memberId}", summary="Update a room member", **documented(Member, errors=(404,)))
async def update_member(
    roomId: RoomIdPath,
    memberId: MemberIdPath,
    body: UpdateMemberRequest,
    request: Request,
    rpc: RpcDep,
    x_fields: XFields = None,
    x_extra: XExtra = None,
) -> dict[str, Any]:
    selected, extra = _selection(None, None, x_fields, x_extra)
    member = await rpc.retrying(
        "identity",
        "update_member",
        cmd.UpdateMember(roomId=roomId, memberId=memberId, request=body),
    )
    room = await _room(request, rpc, roomId)
    return shape_member(member, room, _base(request), selected, extra)


@router.delete(
    "/{memberId}", summary="Remove a member from a room", **documented(Message, errors=(404,))
)
async def remove_member(roomId: RoomIdPath, memberId: MemberIdPath, rpc: RpcDep) -> dict[str, Any]:
    await rpc("identity", "remove_member", {"roomId": roomId, "memberId": memberId})
    return {"message": f"Member '{memberId}' removed from room '{roomId}'"}


# ---- member tokens ------------------------------------------------------------------------


class TokenBody(BaseModel):
    """POST /rooms/{roomId}/members/token body."""

    model_config = ConfigDict(extra="forbid")

    secret: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    joinMeeting: StrictBool = False
    participantName: ParticipantName | None = None


def _tokens(request: Request) -> TokenService:
    tokens: TokenService = request.app.state.tokens
    return tokens


def _identity_of(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "guest"
    return f"{slug[:30]}-{secrets.token_hex(3)}"


async def _claims_from_secret(
    room: dict[str, Any], secret: str, rpc: Rpc
) -> tuple[str, str, dict[str, bool], dict[str, Any] | None]:
    """(kind, role, permissions, member) of a link or identified guest secret."""
    import hmac

    for role, link in room["anonymous"].items():
        if link["enabled"] and hmac.compare_digest(link["secret"].encode(), secret.encode()):
            return "anonymous", role, role_permissions(room, role), None
    try:
        member = await rpc.retrying(
            "identity", "member_by_secret", {"roomId": room["roomId"], "secret": secret}
        )
    except ApiError as exc:
        if exc.status != 404:
            raise
        raise ApiError(
            400, "Room Error", f'Secret "{secret}" is not recognized for room "{room["roomId"]}"'
        ) from None
    return "member", member["baseRole"], member_permissions(room, member), member


async def _claims_for_user(
    request: Request, room: dict[str, Any], who: Principal
) -> tuple[str, str, dict[str, bool], dict[str, Any] | None]:
    if who.is_admin or room.get("owner") == who.user_id:
        return "user", "moderator", role_permissions(room, "moderator"), None
    access = await user_room_access(request, room, who.user_id)
    if access is None:
        raise forbidden()
    kind = "member" if access.member else "user"
    return kind, access.role, access.permissions, access.member


@token_router.post(
    "",
    summary="A room member token (link secret, member secret or user)",
    **documented(MemberToken, errors=(400, 404, 409)),
)
async def member_token(
    roomId: RoomIdPath, body: TokenBody, request: Request, rpc: RpcDep
) -> dict[str, Any]:
    room = await _room(request, rpc, roomId)
    who = principal(request)
    previous = who.member if who.kind == "member" else None
    member: dict[str, Any] | None
    if (secret := body.secret) is not None:
        # A secret that is not recognized (400) counts against the address and the room.
        kind, role, permissions, member = await rate_limits(request).secret_attempt(
            client_address(request), roomId, lambda: _claims_from_secret(room, secret, rpc), {400}
        )
    elif who.kind in ("user", "api_key"):
        kind, role, permissions, member = await _claims_for_user(request, room, who)
    elif previous is not None:
        if previous.room_id != roomId:
            raise forbidden()
        kind, role, permissions, member = previous.kind, previous.role, previous.permissions, None
    else:
        raise ApiError(400, "Room Error", f'A secret is required to join room "{roomId}"')
    name = (
        body.participantName
        or (member["name"] if member else None)
        or (previous.participant_name if previous else None)
        or who.user_id
    )
    if body.joinMeeting:
        if not name:
            raise ApiError(
                400,
                "Room Member Error",
                "participantName is required when joining a meeting and it cannot be inferred "
                "from member/user context",
            )
        if room["status"] == "closed" or room.get("pendingDeletion"):
            raise ApiError(409, "Room Error", f"Room '{roomId}' is closed and cannot be joined")
        if not permissions.get("canJoinMeeting", False):
            raise forbidden("This role may not join meetings")
    identity = (
        previous.identity
        if previous is not None and previous.room_id == roomId
        else member["memberId"]
        if member
        else who.user_id or _identity_of(name or role)
    )
    claims = MemberClaims(
        room_id=roomId,
        identity=identity,
        kind=kind,
        role=role,
        permissions=permissions,
        member_id=member["memberId"] if member else None,
        user_id=(member or {}).get("userId") or who.user_id,
        participant_name=name,
    )
    if not body.joinMeeting:
        return {"token": _tokens(request).member_token(claims)}
    # v3.8.0: the token to join the meeting is a LiveKit token; the meetings service
    # admits the participant and signs it.  A member or user keeps one identity; an
    # anonymous guest's comes from the name, unless a previous token names it.
    keep = identity if (previous is not None and previous.room_id == roomId) or member else None
    return {"token": await _join_meeting(rpc, claims, keep or who.user_id, reconnect=False)}


async def _join_meeting(
    rpc: Rpc, claims: MemberClaims, identity: str | None, reconnect: bool
) -> str:
    """A LiveKit join token from the meetings service for these member claims."""
    assert claims.participant_name is not None
    command = meetings_cmd.JoinMember.model_validate(
        {
            "roomId": claims.room_id,
            "participantName": claims.participant_name,
            "role": claims.role,  # moderator or speaker: recording links may not join
            "permissions": claims.permissions,
            "identity": identity,
            "reconnect": reconnect,
            "metadata": {"member": claims.payload()},
            "commandId": uuid.uuid4().hex,  # the same on the RPC's own retries
        }
    )
    try:
        joined = await rpc.retrying("meetings", "join_member", command)
    except ApiError as exc:
        if exc.code == "room_closed":
            raise ApiError(
                409, "Room Error", f"Room '{claims.room_id}' is closed and cannot be joined"
            ) from None
        raise
    token: str = joined["token"]
    return token


@token_router.post(
    "/refresh",
    summary="Refresh a room member token with current permissions",
    **documented(MemberToken, errors=(400, 404, 409)),
)
async def refresh_member_token(roomId: RoomIdPath, request: Request, rpc: RpcDep) -> dict[str, Any]:
    who = principal(request)
    assert who.member is not None
    current = who.member
    room = await _room(request, rpc, roomId)
    permissions = current.permissions
    role = current.role
    if current.member_id:
        member = await rpc.retrying(
            "identity", "get_member", {"roomId": roomId, "memberId": current.member_id}
        )
        role, permissions = member["baseRole"], member_permissions(room, member)
    elif current.kind == "anonymous":
        permissions = role_permissions(room, current.role)
    claims = MemberClaims(
        room_id=roomId,
        identity=current.identity,
        kind=current.kind,
        role=role,
        permissions=permissions,
        member_id=current.member_id,
        user_id=current.user_id,
        participant_name=current.participant_name,
    )
    if current.joined:  # a participant in the meeting: a new LiveKit token, same identity
        return {"token": await _join_meeting(rpc, claims, current.identity, reconnect=True)}
    return {"token": _tokens(request).member_token(claims)}
