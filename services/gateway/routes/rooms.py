"""`/api/v1/rooms…`: thin routes that ask the rooms service over NATS."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from contracts.commands import rooms as cmd
from contracts.rooms import (
    AccessUpdate,
    AnonymousAccessRequest,
    AnonymousAccessToggle,
    CreateRoomRequest,
    Permissions,
    RolesPatch,
    RoomConfigPatch,
    UpdateRoomSettingsRequest,
    UpdateRoomStatusRequest,
    WithMeeting,
    WithRecordings,
)
from services.gateway.api import PUBLIC_API
from services.gateway.auth import principal
from services.gateway.errors import ApiError
from services.gateway.rooms_view import EXTRA_FIELDS, ROOM_FIELDS, parse_field_list, shape_room
from services.gateway.rpc import RpcDep

router = APIRouter(prefix="/rooms", tags=["rooms"])

RoomIdPath = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_\-]+$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RolePermissionsPatch(_Strict):
    permissions: dict[str, bool]

    @field_validator("permissions")
    @classmethod
    def _known_names(cls, value: dict[str, bool]) -> dict[str, bool]:
        """Refuse names OpenVidu does not know here, not as a 500 further in."""
        unknown = sorted(set(value) - set(Permissions.model_fields))
        if unknown:
            raise ValueError(f"unknown permission(s): {', '.join(unknown)}")
        return value


class RolesBody(_Strict):
    moderator: RolePermissionsPatch | None = None
    speaker: RolePermissionsPatch | None = None


class UpdateRolesBody(_Strict):
    """PUT /rooms/{roomId}/roles body."""

    roles: RolesBody


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


def _selection(
    fields: str | None, extra: str | None, x_fields: str | None, x_extra: str | None
) -> tuple[set[str] | None, set[str] | None]:
    return (
        parse_field_list(fields or x_fields, ROOM_FIELDS, "fields"),
        parse_field_list(extra or x_extra, EXTRA_FIELDS, "extraFields"),
    )


FieldsQuery = Annotated[str | None, Query(description="comma-separated fields to return")]
ExtraQuery = Annotated[str | None, Query(alias="extraFields", description="config,roles")]
XFields = Annotated[str | None, Header(alias="X-Fields")]
XExtra = Annotated[str | None, Header(alias="X-ExtraFields")]


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


@router.post("", status_code=201, summary="Create a room")
async def create_room(
    body: CreateRoomRequest,
    request: Request,
    response: Response,
    rpc: RpcDep,
    idempotency_key: IdempotencyKey = None,
    fields: FieldsQuery = None,
    extraFields: ExtraQuery = None,
    x_fields: XFields = None,
    x_extra: XExtra = None,
) -> dict[str, Any]:
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
    response.headers["Location"] = f"{PUBLIC_API}/rooms/{record['roomId']}"
    return shape_room(record, _base(request), selected, extra)


@router.get("", summary="List rooms")
async def list_rooms(
    request: Request,
    rpc: RpcDep,
    roomName: Annotated[str | None, Query(max_length=50)] = None,
    status: Literal["open", "active_meeting", "closed"] | None = None,
    maxItems: Annotated[int, Query(ge=1, le=100)] = 10,
    nextPageToken: Annotated[str | None, Query(max_length=1000)] = None,
    sortField: Literal["creationDate", "roomName"] = "creationDate",
    sortOrder: Literal["asc", "desc"] = "desc",
    owner: Annotated[str | None, Query(max_length=100)] = None,
    member: Annotated[str | None, Query(max_length=100)] = None,
    userAccess: bool | None = None,
    fields: FieldsQuery = None,
    extraFields: ExtraQuery = None,
    x_fields: XFields = None,
    x_extra: XExtra = None,
) -> dict[str, Any]:
    selected, extra = _selection(fields, extraFields, x_fields, x_extra)
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
    return {
        "rooms": [shape_room(r, _base(request), selected, extra) for r in page["items"]],
        "pagination": {
            "isTruncated": page["isTruncated"],
            "nextPageToken": page["nextPageToken"],
            "maxItems": page["maxItems"],
        },
    }


@router.delete("", summary="Delete several rooms")
async def bulk_delete_rooms(
    request: Request,
    rpc: RpcDep,
    response: Response,
    roomIds: Annotated[str, Query(min_length=1, max_length=10_000)],
    withMeeting: WithMeeting = WithMeeting.FAIL,
    withRecordings: WithRecordings = WithRecordings.FAIL,
    idempotency_key: IdempotencyKey = None,
) -> dict[str, Any]:
    ids = [part.strip() for part in roomIds.split(",") if part.strip()]
    if not ids:
        raise ApiError.invalid("roomIds", "at least one room id is required")
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
                    {"roomId": room_id, "error": "forbidden", "message": "not your room"}
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
    successful = [o for o in outcomes if o["error"] is None]
    failed = refused + [
        {"roomId": o["roomId"], "error": o["error"], "message": o["message"]}
        for o in outcomes
        if o["error"] is not None
    ]
    if failed:
        response.status_code = 400
        message = f"{len(failed)} of {len(outcomes) + len(refused)} room(s) could not be deleted"
    else:
        message = "All rooms successfully processed for deletion"
    return {
        "message": message,
        "successful": [
            {"roomId": o["roomId"], "successCode": o["successCode"], "message": o["message"]}
            for o in successful
        ],
        "failed": failed,
    }


@router.get("/{roomId}", summary="Get a room")
async def get_room(
    roomId: RoomIdPath,
    request: Request,
    rpc: RpcDep,
    fields: FieldsQuery = None,
    extraFields: ExtraQuery = None,
    x_fields: XFields = None,
    x_extra: XExtra = None,
) -> dict[str, Any]:
    selected, extra = _selection(fields, extraFields, x_fields, x_extra)
    record = await rpc.retrying("rooms", "get", cmd.GetRoom(roomId=roomId))
    return shape_room(record, _base(request), selected, extra)


@router.put("/{roomId}", summary="Rename, set auto-deletion, set meetingEndAction (meetplane)")
async def update_room(
    roomId: RoomIdPath, body: UpdateRoomSettingsRequest, request: Request, rpc: RpcDep
) -> dict[str, Any]:
    record = await rpc.retrying(
        "rooms", "update_settings", cmd.UpdateRoomSettings(roomId=roomId, settings=body)
    )
    return {"message": f"Room '{roomId}' updated", "room": shape_room(record, _base(request))}


@router.delete("/{roomId}", summary="Delete a room")
async def delete_room(
    roomId: RoomIdPath,
    request: Request,
    response: Response,
    rpc: RpcDep,
    withMeeting: WithMeeting = WithMeeting.FAIL,
    withRecordings: WithRecordings = WithRecordings.FAIL,
    idempotency_key: IdempotencyKey = None,
) -> dict[str, Any]:
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
    body: dict[str, Any] = {"successCode": result["successCode"], "message": result["message"]}
    if result.get("room"):
        body["room"] = shape_room(result["room"], _base(request))
    return body


@router.get("/{roomId}/config", summary="Get a room's config")
async def get_room_config(roomId: RoomIdPath, rpc: RpcDep) -> dict[str, Any]:
    record = await rpc.retrying("rooms", "get", cmd.GetRoom(roomId=roomId))
    config: dict[str, Any] = record["config"]
    return config


@router.put("/{roomId}/config", summary="Update a room's config")
async def update_room_config(
    roomId: RoomIdPath, body: UpdateConfigBody, rpc: RpcDep
) -> dict[str, Any]:
    record = await rpc.retrying(
        "rooms", "update_config", cmd.UpdateRoomConfig(roomId=roomId, config=body.config)
    )
    return {
        "message": f"Room config for '{roomId}' updated successfully",
        "config": record["config"],
    }


@router.put("/{roomId}/status", summary="Open or close a room")
async def update_room_status(
    roomId: RoomIdPath, body: UpdateRoomStatusRequest, request: Request, rpc: RpcDep
) -> dict[str, Any]:
    record = await rpc.retrying(
        "rooms", "update_status", cmd.UpdateRoomStatus(roomId=roomId, status=body.status)
    )
    return {
        "message": f"Room '{roomId}' is {body.status}",
        "room": shape_room(record, _base(request)),
    }


@router.put("/{roomId}/roles", summary="Update role permissions")
async def update_room_roles(
    roomId: RoomIdPath, body: UpdateRolesBody, rpc: RpcDep
) -> dict[str, Any]:
    patch = RolesPatch(
        moderator=body.roles.moderator.permissions if body.roles.moderator else None,
        speaker=body.roles.speaker.permissions if body.roles.speaker else None,
    )
    record = await rpc.retrying(
        "rooms", "update_roles", cmd.UpdateRoomRoles(roomId=roomId, roles=patch)
    )
    return {"message": f"Roles for '{roomId}' updated", "roles": record["roles"]}


@router.put("/{roomId}/access", summary="Enable links, regenerate secrets")
async def update_room_access(
    roomId: RoomIdPath, body: UpdateAccessBody, request: Request, rpc: RpcDep
) -> dict[str, Any]:
    update = AccessUpdate(
        anonymous=body.access.anonymous, user=body.access.user, regenerate=body.regenerate
    )
    record = await rpc.retrying(
        "rooms", "update_access", cmd.UpdateRoomAccess(roomId=roomId, access=update)
    )
    shaped = shape_room(record, _base(request))
    return {"message": f"Access for '{roomId}' updated", "access": shaped["access"]}


@router.get("/{roomId}/history", summary="The room's event history (meetplane)")
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
