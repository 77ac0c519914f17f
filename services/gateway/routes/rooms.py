"""`/api/v1/rooms…`: thin routes that ask the rooms service over NATS."""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator, model_validator

from contracts.commands import rooms as cmd
from contracts.rooms import (
    AccessUpdate,
    AnonymousAccessRequest,
    AnonymousAccessToggle,
    CreateRoomRequest,
    PermissionName,
    RolesPatch,
    RoomConfigPatch,
    UpdateRoomSettingsRequest,
    UpdateRoomStatusRequest,
    WithMeeting,
    WithRecordings,
)
from services.gateway.api import PUBLIC_API
from services.gateway.auth import principal
from services.gateway.errors import ApiError, error_name
from services.gateway.params import RoomIdPath, StrictQueryBool, room_id_list
from services.gateway.rooms_view import EXTRA_FIELDS, selection, shape_room
from services.gateway.rpc import RpcDep
from services.gateway.schemas import (
    BulkRoomsDeleted,
    Room,
    RoomAccess,
    RoomDeleted,
    RoomHistory,
    RoomList,
    RoomRoles,
    RoomUpdated,
    documented,
    json_body,
)
from services.gateway.schemas import RoomConfig as RoomConfigModel

router = APIRouter(prefix="/rooms", tags=["rooms"])


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RolePermissionsPatch(_Strict):
    # Unknown names are a 422 naming the key, not a 500 further in.
    permissions: dict[PermissionName, StrictBool]


class RolesBody(_Strict):
    moderator: RolePermissionsPatch | None = None
    speaker: RolePermissionsPatch | None = None


class UpdateRolesBody(_Strict):
    """PUT /rooms/{roomId}/roles body: v3.8.0's spec names the object `config`;
    meetplane's earlier clients send `roles`.  Exactly one of them."""

    roles: RolesBody | None = None
    config: RolesBody | None = None

    @model_validator(mode="after")
    def _one(self) -> UpdateRolesBody:
        if (self.roles is None) == (self.config is None):
            raise ValueError("send the roles as `config` (or `roles`), exactly once")
        return self

    def patch(self) -> RolesPatch:
        """The permission patches per role."""
        body = self.config or self.roles or RolesBody()
        return RolesPatch(
            moderator=body.moderator.permissions if body.moderator else None,
            speaker=body.speaker.permissions if body.speaker else None,
        )


class AccessBody(_Strict):
    anonymous: AnonymousAccessRequest | None = None
    user: AnonymousAccessToggle | None = None


class UpdateAccessBody(_Strict):
    """PUT /rooms/{roomId}/access body: enable links, regenerate secrets."""

    access: AccessBody = Field(default_factory=AccessBody)
    regenerate: list[Literal["moderator", "speaker", "recording"]] = Field(default_factory=list)


class UpdateConfigBody(_Strict):
    """PUT /rooms/{roomId}/config body."""

    config: RoomConfigPatch

    @field_validator("config", mode="before")
    @classmethod
    def _no_nulls(cls, value: Any) -> Any:
        # v3.8.0's config sections are objects: leave one out, but `null` is not one.
        if isinstance(value, dict):
            nulls = sorted(k for k, v in value.items() if v is None)
            if nulls:
                raise ValueError(f"{', '.join(nulls)} must be an object, not null")
        return value


_selection = selection

FieldsQuery = Annotated[
    str | None, Query(max_length=1000, description="comma-separated fields to return")
]
ExtraQuery = Annotated[
    str | None, Query(alias="extraFields", max_length=1000, description="config,roles")
]
XFields = Annotated[str | None, Header(alias="X-Fields", max_length=1000)]
XExtra = Annotated[str | None, Header(alias="X-ExtraFields", max_length=1000)]


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=100,
        description="repeat a create/delete safely: the same key returns the first outcome",
    ),
]


def command_id(idempotency_key: str | None) -> str:
    """The command id: the client's Idempotency-Key, else a fresh one (gateway retries reuse it)."""
    return idempotency_key or uuid.uuid4().hex


def _base(request: Request) -> str:
    base: str = request.app.state.settings.base_url()
    return base


@router.post("", summary="Create a room", **documented(Room, 201))
async def create_room(
    body: CreateRoomRequest,
    request: Request,
    rpc: RpcDep,
    idempotency_key: IdempotencyKey = None,
    fields: FieldsQuery = None,
    extraFields: ExtraQuery = None,
    x_fields: XFields = None,
    x_extra: XExtra = None,
) -> Response:
    selected, extra = _selection(fields, extraFields, x_fields, x_extra)
    who = principal(request)
    record = await rpc.retrying(
        "rooms",
        "create",
        cmd.CreateRoom(
            request=body,
            commandId=command_id(idempotency_key),
            # v3.8.0: a room created with an API key belongs to the root admin.
            owner=who.user_id
            if who.kind == "user"
            else request.app.state.revocations.state.root_user,
        ),
    )
    return json_body(
        shape_room(record, _base(request), selected, extra),
        201,
        {"Location": f"{_base(request)}{PUBLIC_API}/rooms/{record['roomId']}"},
    )


@router.get("", summary="List rooms", **documented(RoomList))
async def list_rooms(
    request: Request,
    rpc: RpcDep,
    roomName: Annotated[str | None, Query(max_length=200)] = None,
    roomNameMatchMode: Literal["exact", "prefix", "partial", "regex"] = "exact",
    roomNameCaseInsensitive: StrictQueryBool = False,
    status: Literal["open", "active_meeting", "closed"] | None = None,
    maxItems: Annotated[int, Query(ge=1, le=100)] = 10,
    nextPageToken: Annotated[str | None, Query(max_length=1000)] = None,
    sortField: Literal["creationDate", "roomName", "autoDeletionDate"] = "creationDate",
    sortOrder: Literal["asc", "desc"] = "desc",
    owner: Annotated[str | None, Query(max_length=100)] = None,
    member: Annotated[str | None, Query(max_length=100)] = None,
    userAccess: StrictQueryBool | None = None,
    fields: FieldsQuery = None,
    extraFields: ExtraQuery = None,
    x_fields: XFields = None,
    x_extra: XExtra = None,
) -> dict[str, Any]:
    selected, extra = _selection(fields, extraFields, x_fields, x_extra)
    if roomName is not None and roomNameMatchMode == "regex":
        try:
            re.compile(roomName)
        except re.error:
            raise ApiError.invalid("roomName", "Invalid regular expression pattern") from None
    who = principal(request)
    member_rooms = (
        await rpc.retrying("identity", "rooms_of_user", {"userId": member}) if member else None
    )
    visible = None
    if who.kind == "user" and not who.is_admin:
        # A user sees the rooms they own, are a member of, or that are open to users.
        own = await rpc.retrying("identity", "rooms_of_user", {"userId": who.user_id})
        visible = cmd.AccessibleTo(userId=who.user_id or "", memberRoomIds=own)
    page = await rpc.retrying(
        "rooms",
        "list",
        cmd.ListRooms(
            roomName=roomName,
            roomNameMatchMode=roomNameMatchMode,
            roomNameCaseInsensitive=roomNameCaseInsensitive,
            status=status,
            maxItems=maxItems,
            nextPageToken=nextPageToken,
            sortField=sortField,
            sortOrder=sortOrder,
            owner=owner,
            memberRoomIds=member_rooms,
            userAccess=userAccess,
            accessibleTo=visible,
        ),
    )
    pagination: dict[str, Any] = {"isTruncated": page["isTruncated"]}
    if page["nextPageToken"] is not None:
        pagination["nextPageToken"] = page["nextPageToken"]
    pagination["maxItems"] = page["maxItems"]
    return {
        "rooms": [
            shape_room(r, _base(request), selected, extra, meta=False) for r in page["items"]
        ],
        "_extraFields": sorted(EXTRA_FIELDS),
        "pagination": pagination,
    }


@router.delete(
    "",
    summary="Delete several rooms (400 with the same shape when any failed)",
    **documented(BulkRoomsDeleted, 200, (400, BulkRoomsDeleted)),
)
async def bulk_delete_rooms(
    request: Request,
    rpc: RpcDep,
    response: Response,
    roomIds: Annotated[str, Query(min_length=1, max_length=10_000)],
    withMeeting: WithMeeting = WithMeeting.FAIL,
    withRecordings: WithRecordings = WithRecordings.FAIL,
    idempotency_key: IdempotencyKey = None,
    fields: FieldsQuery = None,
    extraFields: ExtraQuery = None,
    x_fields: XFields = None,
    x_extra: XExtra = None,
) -> dict[str, Any]:
    selected, extra = _selection(fields, extraFields, x_fields, x_extra)
    ids = room_id_list(roomIds)
    if not ids:
        raise ApiError.invalid(
            "roomIds", "At least one valid roomId is required after sanitization"
        )
    if len(ids) > 100:
        raise ApiError.invalid("roomIds", "at most 100 room ids per request")
    who = principal(request)
    refused: list[dict[str, Any]] = []
    if not who.is_admin:
        # A room manager deletes only the rooms they own.
        owned = []
        for room_id in ids:
            try:
                room = await rpc.retrying("rooms", "get", {"roomId": room_id})
            except ApiError:
                room = {}
            if room.get("owner") == who.user_id:
                owned.append(room_id)
            else:
                refused.append(
                    {
                        "roomId": room_id,
                        "error": "Authorization Error",
                        "message": "Insufficient permissions to access this resource",
                    }
                )
        ids = owned
    outcomes = (
        []
        if not ids
        else await rpc.retrying(
            "rooms",
            "bulk_delete",
            cmd.BulkDeleteRooms(
                roomIds=ids,
                withMeeting=withMeeting,
                withRecordings=withRecordings,
                commandId=command_id(idempotency_key),
            ),
        )
    )
    deleted = [
        _outcome(o, _base(request), selected, extra, with_id=True)
        for o in outcomes
        if o["error"] is None
    ]
    failed = refused + [
        {"roomId": o["roomId"], "error": error_name(o["error"], 409), "message": o["message"]}
        for o in outcomes
        if o["error"] is not None
    ]
    if failed:
        response.status_code = 400
        message = f"{len(failed)} room(s) failed to process while deleting"
    else:
        message = "All rooms successfully processed for deletion"
    return {"message": message, "deleted": deleted, "failed": failed}


def _outcome(
    result: dict[str, Any],
    base: str,
    selected: set[str] | None,
    extra: set[str],
    *,
    with_id: bool = False,
) -> dict[str, Any]:
    """A deletion outcome: the room is shown when it still exists (closed or scheduled)."""
    body: dict[str, Any] = {"roomId": result["roomId"]} if with_id else {}
    body |= {"successCode": result["successCode"], "message": result["message"]}
    if result.get("room"):
        room = shape_room(result["room"], base, selected, extra)
        code = result["successCode"]
        if "scheduled" in code:
            # The meeting is still live; what happens when it ends is the end action.
            if "status" in room:
                room["status"] = "active_meeting"
            if "meetingEndAction" in room:
                room["meetingEndAction"] = "close" if code.endswith("closed") else "delete"
        body["room"] = room
    return body


@router.get("/{roomId}", summary="Get a room", **documented(Room, errors=(404,)))
async def get_room(
    roomId: RoomIdPath,
    request: Request,
    rpc: RpcDep,
    fields: FieldsQuery = None,
    extraFields: ExtraQuery = None,
    x_fields: XFields = None,
    x_extra: XExtra = None,
) -> Response:
    selected, extra = _selection(fields, extraFields, x_fields, x_extra)
    record = await rpc.retrying("rooms", "get", cmd.GetRoom(roomId=roomId))
    return json_body(shape_room(record, _base(request), selected, extra))


@router.put(
    "/{roomId}",
    summary="Rename, set auto-deletion, set meetingEndAction (meetplane extension)",
    **documented(RoomUpdated, errors=(404, 409)),
)
async def update_room(
    roomId: RoomIdPath, body: UpdateRoomSettingsRequest, request: Request, rpc: RpcDep
) -> dict[str, Any]:
    record = await rpc.retrying(
        "rooms", "update_settings", cmd.UpdateRoomSettings(roomId=roomId, settings=body)
    )
    return {"message": f"Room '{roomId}' updated", "room": shape_room(record, _base(request))}


@router.delete(
    "/{roomId}",
    summary="Delete a room (202: scheduled until its meeting ends)",
    **documented(RoomDeleted, 200, (202, RoomDeleted), errors=(404, 409)),
)
async def delete_room(
    roomId: RoomIdPath,
    request: Request,
    response: Response,
    rpc: RpcDep,
    withMeeting: WithMeeting = WithMeeting.FAIL,
    withRecordings: WithRecordings = WithRecordings.FAIL,
    idempotency_key: IdempotencyKey = None,
    fields: FieldsQuery = None,
    extraFields: ExtraQuery = None,
    x_fields: XFields = None,
    x_extra: XExtra = None,
) -> dict[str, Any]:
    selected, extra = _selection(fields, extraFields, x_fields, x_extra)
    result = await rpc.retrying(
        "rooms",
        "delete",
        cmd.DeleteRoom(
            roomId=roomId,
            withMeeting=withMeeting,
            withRecordings=withRecordings,
            commandId=command_id(idempotency_key),
        ),
    )
    response.status_code = 202 if result["scheduled"] else 200
    return _outcome(result, _base(request), selected, extra)


@router.get(
    "/{roomId}/config", summary="Get a room's config", **documented(RoomConfigModel, errors=(404,))
)
async def get_room_config(roomId: RoomIdPath, rpc: RpcDep) -> dict[str, Any]:
    record = await rpc.retrying("rooms", "get", cmd.GetRoom(roomId=roomId))
    config: dict[str, Any] = record["config"]
    return config


@router.put(
    "/{roomId}/config",
    summary="Update a room's config (409 while a meeting is live)",
    **documented(RoomConfigModel, errors=(404, 409)),
)
async def update_room_config(
    roomId: RoomIdPath, body: UpdateConfigBody, rpc: RpcDep
) -> dict[str, Any]:
    record = await rpc.retrying(
        "rooms", "update_config", cmd.UpdateRoomConfig(roomId=roomId, config=body.config)
    )
    config: dict[str, Any] = record["config"]
    return config


@router.put(
    "/{roomId}/status",
    summary="Open or close a room",
    **documented(Room, 200, (202, Room), errors=(404, 409)),
)
async def update_room_status(
    roomId: RoomIdPath,
    body: UpdateRoomStatusRequest,
    request: Request,
    response: Response,
    rpc: RpcDep,
    x_fields: XFields = None,
    x_extra: XExtra = None,
) -> dict[str, Any]:
    selected, extra = _selection(None, None, x_fields, x_extra)
    record = await rpc.retrying(
        "rooms", "update_status", cmd.UpdateRoomStatus(roomId=roomId, status=body.status)
    )
    if body.status == "closed" and record["status"] != "closed":
        response.status_code = 202  # closes when the live meeting ends
    return shape_room(record, _base(request), selected, extra)


@router.put(
    "/{roomId}/roles",
    summary="Update role permissions (409 while a meeting is live)",
    **documented(RoomRoles, errors=(404, 409)),
)
async def update_room_roles(
    roomId: RoomIdPath, body: UpdateRolesBody, rpc: RpcDep
) -> dict[str, Any]:
    record = await rpc.retrying(
        "rooms", "update_roles", cmd.UpdateRoomRoles(roomId=roomId, roles=body.patch())
    )
    roles: dict[str, Any] = record["roles"]
    return roles


@router.put(
    "/{roomId}/access",
    summary="Enable links, regenerate secrets (409 while a meeting is live)",
    **documented(RoomAccess, errors=(404, 409)),
)
async def update_room_access(
    roomId: RoomIdPath, body: UpdateAccessBody, request: Request, rpc: RpcDep
) -> dict[str, Any]:
    update = AccessUpdate(
        anonymous=body.access.anonymous, user=body.access.user, regenerate=body.regenerate
    )
    record = await rpc.retrying(
        "rooms", "update_access", cmd.UpdateRoomAccess(roomId=roomId, access=update)
    )
    access: dict[str, Any] = shape_room(record, _base(request))["access"]
    return access


@router.get(
    "/{roomId}/history",
    summary="The room's event history (meetplane extension)",
    **documented(RoomHistory, errors=(404,)),
)
async def room_history(
    roomId: RoomIdPath,
    rpc: RpcDep,
    maxItems: Annotated[int, Query(ge=1, le=1000)] = 100,
    nextPageToken: Annotated[str | None, Query(max_length=40)] = None,
) -> dict[str, Any]:
    page = await rpc.retrying(
        "rooms",
        "history",
        cmd.RoomHistory(roomId=roomId, maxItems=maxItems, nextPageToken=nextPageToken),
    )
    return {
        "events": page["items"],
        "pagination": {
            "isTruncated": page["isTruncated"],
            "nextPageToken": page["nextPageToken"],
            "maxItems": page["maxItems"],
        },
    }
