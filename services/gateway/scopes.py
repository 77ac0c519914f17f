"""Which rooms' recordings a caller may see or act on: the `scoped` routes of the policy table.

The policy table lets any signed-in user and any member token through to the
routes that list, download or delete several recordings; these functions narrow
what the route then does, as v3.8.0 says: an access token reaches the recordings
of the rooms its user owns, or may enter with the permission the route needs
(as a member, or through the room's user access); a member token reaches its own
room's recordings only (its `roomId` filter is ignored).  API keys and admins see
everything (`None`).
"""

from __future__ import annotations

from typing import Any

from fastapi import Request

from contracts.commands import rooms as rooms_cmd
from services.gateway.auth import principal
from services.gateway.errors import ApiError
from services.gateway.permissions import member_permissions, role_permissions
from services.gateway.policy import grants

ROOMS_PAGE = 100


async def _rooms_visible_to(
    request: Request, user_id: str, member_of: list[str]
) -> list[dict[str, Any]]:
    """Every room the user owns, is a member of, or may enter through user access."""
    rpc = request.app.state.rpc
    visible = rooms_cmd.AccessibleTo(userId=user_id, memberRoomIds=member_of)
    rooms: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        page = await rpc.retrying(
            "rooms",
            "list",
            rooms_cmd.ListRooms(maxItems=ROOMS_PAGE, nextPageToken=token, accessibleTo=visible),
        )
        rooms += page["items"]
        token = page["nextPageToken"]
        if not token:
            return rooms


async def recording_rooms(request: Request, permission: str) -> set[str] | None:
    """The rooms whose recordings the caller may reach with `permission` (None: all rooms)."""
    who = principal(request)
    if who.kind == "member":
        assert who.member is not None  # the policy checked the permission already
        return {who.member.room_id}
    if who.kind != "user" or who.is_admin:
        return None
    assert who.user_id is not None
    memberships = {
        m["roomId"]: m
        for m in await request.app.state.rpc.retrying(
            "identity", "memberships_of_user", {"userId": who.user_id}
        )
    }
    allowed: set[str] = set()
    for room in await _rooms_visible_to(request, who.user_id, sorted(memberships)):
        member = memberships.get(room["roomId"])
        if room.get("owner") == who.user_id:
            permissions: dict[str, bool] | None = None
        elif member is not None:
            permissions = member_permissions(room, member)
        else:  # user access (see `policy.user_room_access`)
            permissions = role_permissions(room, "speaker")
        if room.get("owner") == who.user_id or grants(permissions, permission):
            allowed.add(room["roomId"])
    return allowed


async def split_recordings(
    request: Request, recording_ids: list[str], permission: str
) -> tuple[list[str], list[str]]:
    """(ids the caller may act on, ids they may not) among `recording_ids`.

    A recording that does not exist counts as allowed: the recordings service
    then answers for it as for anyone (not found).
    """
    rooms = await recording_rooms(request, permission)
    if rooms is None:
        return list(recording_ids), []
    allowed: list[str] = []
    refused: list[str] = []
    for recording_id in recording_ids:
        try:
            record = await request.app.state.rpc.retrying(
                "recordings", "get", {"recordingId": recording_id}
            )
        except ApiError as exc:
            if exc.status != 404:
                raise
            allowed.append(recording_id)
            continue
        (allowed if record["roomId"] in rooms else refused).append(recording_id)
    return allowed, refused
