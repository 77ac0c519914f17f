"""Meetings: join with a room link, end, evict, change role (OpenVidu Meet shapes)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from contracts.commands import meetings as cmd
from contracts.commands.meetings import ParticipantName
from services.gateway.ratelimits import client_address, rate_limits
from services.gateway.rpc import RpcDep

RoomIdPath = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_\-]+$")]
IdentityPath = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_\-.]+$")]

join_router = APIRouter(prefix="/rooms", tags=["meetings"])
router = APIRouter(prefix="/meetings", tags=["meetings"])


class JoinBody(BaseModel):
    """POST /rooms/{roomId}/join: the link secret is the credential."""

    model_config = ConfigDict(extra="forbid")

    secret: Annotated[str, Field(min_length=1, max_length=200)]
    participantName: ParticipantName


class RoleBody(BaseModel):
    """PUT /meetings/{roomId}/participants/{identity}/role."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["moderator", "speaker"]


@join_router.post("/{roomId}/join", summary="Join the room's meeting with a room link secret")
async def join(
    roomId: RoomIdPath,
    body: JoinBody,
    request: Request,
    rpc: RpcDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=100)] = None,
) -> dict[str, Any]:
    # The command id makes the join safe to retry if the replica handling it dies.
    command = cmd.JoinMeeting(
        roomId=roomId,
        secret=body.secret,
        participantName=body.participantName,
        commandId=idempotency_key or uuid.uuid4().hex,
    )
    # A wrong secret (401) counts against the caller's address and the room.
    result: dict[str, Any] = await rate_limits(request).secret_attempt(
        client_address(request), roomId, lambda: rpc.retrying("meetings", "join", command), {401}
    )
    return result


@router.get("/{roomId}", summary="The live meeting with its participants (meetplane)")
async def get_meeting(roomId: RoomIdPath, rpc: RpcDep) -> dict[str, Any]:
    result: dict[str, Any] = await rpc.retrying("meetings", "get", cmd.RoomMeeting(roomId=roomId))
    return result


@router.delete("/{roomId}", summary="End the meeting")
async def end_meeting(roomId: RoomIdPath, rpc: RpcDep) -> dict[str, Any]:
    result = await rpc.retrying("meetings", "end", cmd.RoomMeeting(roomId=roomId))
    return {"message": f"Meeting in room '{roomId}' ended", **result}


@router.delete("/{roomId}/participants/{identity}", summary="Evict a participant")
async def evict(roomId: RoomIdPath, identity: IdentityPath, rpc: RpcDep) -> dict[str, Any]:
    await rpc.retrying("meetings", "evict", cmd.ParticipantRef(roomId=roomId, identity=identity))
    return {"message": f"Participant '{identity}' removed from the meeting"}


@router.post(
    "/{roomId}/participants/{identity}/leave",
    summary="Participant left (meetplane; presence for the local media backend)",
)
async def leave(roomId: RoomIdPath, identity: IdentityPath, rpc: RpcDep) -> dict[str, Any]:
    await rpc("meetings", "leave", cmd.ParticipantRef(roomId=roomId, identity=identity))
    return {"message": f"Participant '{identity}' left"}


@router.put("/{roomId}/participants/{identity}/role", summary="Change a participant's role")
async def change_role(
    roomId: RoomIdPath, identity: IdentityPath, body: RoleBody, rpc: RpcDep
) -> dict[str, Any]:
    participant = await rpc.retrying(
        "meetings", "change_role", cmd.ChangeRole(roomId=roomId, identity=identity, role=body.role)
    )
    return {"message": f"Participant '{identity}' is now {body.role}", "participant": participant}
