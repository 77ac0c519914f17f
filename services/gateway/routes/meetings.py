"""Meetings: join with a room link, end, evict, change role (OpenVidu Meet shapes)."""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.commands import meetings as cmd
from contracts.commands import recordings as recordings_cmd
from contracts.commands import rooms as rooms_cmd
from contracts.commands.meetings import ParticipantName
from services.gateway.errors import ApiError
from services.gateway.params import RoomIdPath
from services.gateway.ratelimits import client_address, rate_limits
from services.gateway.rpc import Rpc, RpcDep
from services.gateway.schemas import (
    Joined,
    Meeting,
    MeetingEnded,
    Message,
    Participant,
    ParticipantList,
    ParticipantRoleChanged,
    documented,
    json_body,
)
from services.runtime.logging import get_logger

_ROOM_ID = re.compile(r"[A-Za-z0-9_\-]{1,100}")
_IDENTITY = re.compile(r"[A-Za-z0-9_\-.]{1,100}")


# Meeting control answers 404 for an id that cannot exist, as 3.9 documents (no 422).
async def _room_id(roomId: Annotated[str, Path()]) -> str:
    if not _ROOM_ID.fullmatch(roomId):
        raise ApiError(404, "Room Error", f"Room '{roomId[:100]}' not found", code="room_not_found")
    return roomId


async def _identity(roomId: Annotated[str, Path()], identity: Annotated[str, Path()]) -> str:
    if not _IDENTITY.fullmatch(identity):
        raise ApiError(
            404,
            "Participant Error",
            f'Participant "{identity[:100]}" not found in room "{roomId[:100]}"',
            code="participant_not_found",
        )
    return identity


MeetingRoomId = Annotated[str, Depends(_room_id)]
IdentityPath = Annotated[str, Depends(_identity)]

log = get_logger("meetplane.gateway")
join_router = APIRouter(prefix="/rooms", tags=["meetings"])
router = APIRouter(prefix="/meetings", tags=["meetings"])


class JoinBody(BaseModel):
    """POST /rooms/{roomId}/join: the link secret is the credential."""

    model_config = ConfigDict(extra="forbid")

    secret: Annotated[str, Field(min_length=1, max_length=200)]
    participantName: ParticipantName


class RoleBody(BaseModel):
    """PUT /meetings/{roomId}/participants/{identity}/role: 3.9's `action`
    (`upgrade` to moderator, `downgrade` to speaker), or meetplane's `role`."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["upgrade", "downgrade"] | None = None
    role: Literal["moderator", "speaker"] | None = None

    @model_validator(mode="after")
    def _one(self) -> RoleBody:
        if (self.action is None) == (self.role is None):
            raise ValueError("send `action` (upgrade or downgrade), or `role`")
        return self

    def target(self) -> Literal["moderator", "speaker"]:
        """The role the participant gets."""
        if self.role is not None:
            return self.role
        return "moderator" if self.action == "upgrade" else "speaker"


def participant(record: dict[str, Any]) -> dict[str, Any]:
    """A participant as 3.9 shows it (media state is LiveKit's: not tracked, so false)."""
    return {
        "participantIdentity": record["identity"],
        "participantName": record["name"],
        "role": record["role"],
        "joinDate": record["joinedAt"],
        "audioEnabled": False,
        "videoEnabled": False,
        "screenSharing": False,
    }


@join_router.post(
    "/{roomId}/join",
    summary="Join the room's meeting with a room link secret",
    **documented(Joined, errors=(400, 404, 409)),
)
async def join(
    roomId: RoomIdPath,
    body: JoinBody,
    request: Request,
    rpc: RpcDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=100)] = None,
) -> Response:
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
    return json_body(result)


@router.get(
    "/{roomId}",
    summary="The live meeting (3.9 shape; meetplane adds its participants and ids)",
    **documented(Meeting, errors=(404,)),
)
async def get_meeting(roomId: MeetingRoomId, rpc: RpcDep) -> dict[str, Any]:
    meeting: dict[str, Any] = await rpc.retrying("meetings", "get", cmd.RoomMeeting(roomId=roomId))
    room = await rpc.retrying("rooms", "get", rooms_cmd.GetRoom(roomId=roomId))
    present = [p for p in meeting["participants"] if p.get("present")]
    return {
        "roomId": roomId,
        "roomName": room["roomName"],
        "startDate": meeting["startedAt"],
        "participantCount": len(present),
        "recordingActive": await _recording_active(rpc, roomId),
        **meeting,
    }


async def _recording_active(rpc: Rpc, room_id: str) -> bool:
    """Whether the room is being recorded (the recordings service knows)."""
    try:
        page = await rpc.retrying(
            "recordings",
            "list",
            recordings_cmd.ListRecordings(roomId=room_id, status="active", maxItems=1),
        )
    except ApiError as exc:
        if exc.status != 503:
            raise
        # A platform without recordings (or with them down) records nothing.
        log.warning("meetings.recordings_unavailable", room_id=room_id)
        return False
    return bool(page["items"])


@router.get(
    "/{roomId}/participants",
    summary="The participants of the live meeting",
    **documented(ParticipantList, errors=(404,)),
)
async def list_participants(roomId: MeetingRoomId, rpc: RpcDep) -> dict[str, Any]:
    meeting = await rpc.retrying("meetings", "get", cmd.RoomMeeting(roomId=roomId))
    return {"participants": [participant(p) for p in meeting["participants"] if p.get("present")]}


@router.get(
    "/{roomId}/participants/{identity}",
    summary="One participant of the live meeting",
    **documented(Participant, errors=(404,)),
)
async def get_participant(
    roomId: MeetingRoomId, identity: IdentityPath, rpc: RpcDep
) -> dict[str, Any]:
    meeting = await rpc.retrying("meetings", "get", cmd.RoomMeeting(roomId=roomId))
    for record in meeting["participants"]:
        if record["identity"] == identity and record.get("present"):
            return participant(record)
    raise ApiError(
        404,
        "Participant Error",
        f'Participant "{identity}" not found in room "{roomId}"',
        code="participant_not_found",
    )


@router.delete("/{roomId}", summary="End the meeting", **documented(MeetingEnded, errors=(404,)))
async def end_meeting(roomId: MeetingRoomId, rpc: RpcDep) -> dict[str, Any]:
    result = await rpc.retrying("meetings", "end", cmd.RoomMeeting(roomId=roomId))
    return {"message": f"Meeting in room '{roomId}' ended successfully", **result}


@router.delete(
    "/{roomId}/participants/{identity}",
    summary="Evict a participant",
    **documented(Message, errors=(404,)),
)
async def evict(roomId: MeetingRoomId, identity: IdentityPath, rpc: RpcDep) -> dict[str, Any]:
    await rpc.retrying("meetings", "evict", cmd.ParticipantRef(roomId=roomId, identity=identity))
    return {
        "message": f"Participant '{identity}' kicked successfully from meeting in room '{roomId}'"
    }


@router.post(
    "/{roomId}/participants/{identity}/leave",
    summary="Participant left (meetplane; presence for the local media backend)",
    **documented(Message, errors=(404,)),
)
async def leave(roomId: MeetingRoomId, identity: IdentityPath, rpc: RpcDep) -> dict[str, Any]:
    await rpc("meetings", "leave", cmd.ParticipantRef(roomId=roomId, identity=identity))
    return {"message": f"Participant '{identity}' left"}


@router.put(
    "/{roomId}/participants/{identity}/role",
    summary="Change a participant's role",
    **documented(ParticipantRoleChanged, errors=(404, 409)),
)
async def change_role(
    roomId: MeetingRoomId, identity: IdentityPath, body: RoleBody, rpc: RpcDep
) -> dict[str, Any]:
    changed = await rpc.retrying(
        "meetings",
        "change_role",
        cmd.ChangeRole(roomId=roomId, identity=identity, role=body.target()),
    )
    action = body.action or ("upgrade" if body.target() == "moderator" else "downgrade")
    return {
        "message": f'Moderation action "{action}" applied to participant "{identity}"'
        f' in room "{roomId}"',
        "participant": changed,
    }


# v3.8.0's internal API has the same three meeting-control routes (member tokens only):
# the same functions, mounted once more.
internal_router = APIRouter(prefix="/meetings", tags=["meetings"])
internal_router.add_api_route(
    "/{roomId}",
    end_meeting,
    methods=["DELETE"],
    summary="End the meeting",
    **documented(MeetingEnded, errors=(404,)),
)
internal_router.add_api_route(
    "/{roomId}/participants/{identity}",
    evict,
    methods=["DELETE"],
    summary="Kick a participant",
    **documented(Message, errors=(404,)),
)
internal_router.add_api_route(
    "/{roomId}/participants/{identity}/role",
    change_role,
    methods=["PUT"],
    summary="Change a participant's role",
    **documented(ParticipantRoleChanged, errors=(404, 409)),
)
