"""Participant pages: the room link (`/room/{roomId}?secret=…`), the room's recordings,
and a shared recording (`/recording/{recordingId}?recordingSecret=…`).

The secret is the credential.  The page exchanges it for a room member token through the
internal API (`POST …/rooms/{roomId}/members/token`), reads the room with that token,
and hands the token (never the secret) to the page's script, which removes the secret
from the address bar.  Joining, leaving and moderating are the page script's calls to
the public API with that token.  Access logs carry paths only, never query strings.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse

from services.gateway.errors import ApiError
from services.gateway.tokens import MemberClaims, TokenService
from services.gateway.web.apiclient import INTERNAL_API, PUBLIC_API, Api
from services.gateway.web.live import room_events
from services.gateway.web.media import recording_media
from services.gateway.web.pages import (
    PageRoute,
    error_page,
    render,
    secure_cookies,
    session_token,
)

router = APIRouter(route_class=PageRoute, include_in_schema=False)

SecretQuery = Annotated[str | None, Query(max_length=200)]
ROOM_ID_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


def _valid_room_id(room_id: str) -> bool:
    return 0 < len(room_id) <= 100 and set(room_id) <= ROOM_ID_CHARS


def _link_problem(request: Request, room_id: str, exc: ApiError) -> Response:
    """The page for a link that no longer leads into its room."""
    if exc.status == 404:
        return error_page(
            request,
            404,
            "This room does not exist: it may have been deleted. "
            "Ask whoever sent you the link for a new one.",
            "This room no longer exists",
        )
    if exc.status == 400 and "not recognized" in exc.message:
        return error_page(
            request,
            403,
            "This link is no longer valid: it was disabled or replaced by a new one. "
            "Ask the room's moderator for the current link.",
            "This link no longer works",
        )
    raise exc


async def _enter(
    request: Request, room_id: str, secret: str | None
) -> tuple[str, MemberClaims, dict[str, Any]] | Response:
    """(member token, its claims, the room) for a link, or the page saying why not."""
    if not _valid_room_id(room_id):
        return error_page(request, 404, "There is no room at this address.", "No such room")
    if not secret:
        return error_page(
            request,
            400,
            "This link is incomplete: it has no secret. Open the full link you were sent.",
            "This link is incomplete",
        )
    try:
        answer = await Api(request).call(
            "POST", f"{INTERNAL_API}/rooms/{room_id}/members/token", json={"secret": secret}
        )
    except ApiError as exc:
        return _link_problem(request, room_id, exc)
    token = str(answer["token"])
    tokens: TokenService = request.app.state.tokens
    claims = tokens.member_claims(token)
    try:
        room = await Api.member(request, token).get(f"{PUBLIC_API}/rooms/{room_id}")
    except ApiError as exc:
        return _link_problem(request, room_id, exc)
    if room.get("pendingDeletion"):
        return error_page(
            request,
            410,
            "This room is being deleted and can no longer be joined.",
            "This room is being deleted",
        )
    return token, claims, room


def member_cookie(room_id: str) -> str:
    """The cookie holding a room link's member token (for what cannot send headers:
    `<video>` and `EventSource`)."""
    return f"mp_member_{room_id}"


def remember_member(request: Request, response: Response, room_id: str, token: str) -> None:
    """Keep the link's member token in an HttpOnly cookie for this room's pages only."""
    response.set_cookie(
        member_cookie(room_id),
        token,
        httponly=True,
        samesite="strict",
        secure=secure_cookies(request),
        path=f"/room/{room_id}",
    )


def _media_backend(request: Request) -> str:
    backend: str = request.app.state.settings.media_backend
    return backend


@router.get("/room/{roomId}")
async def join_page(request: Request, roomId: str, secret: SecretQuery = None) -> Response:
    entered = await _enter(request, roomId, secret)
    if isinstance(entered, Response):
        return entered
    token, claims, room = entered
    permissions = claims.permissions
    if room["status"] == "closed" and permissions.get("canJoinMeeting"):
        return error_page(
            request,
            409,
            f"The room “{room['roomName']}” is closed: its meeting cannot be joined now. "
            "Try again when a moderator has opened it.",
            "This room is closed",
        )
    response = render(
        request,
        "room.html",
        {
            "room": room,
            "role": claims.role,
            "permissions": permissions,
            "member_token": token,
            "media_backend": _media_backend(request),
            "can_join": bool(permissions.get("canJoinMeeting")) and claims.role != "recording",
            "can_see_recordings": bool(permissions.get("canRetrieveRecordings")),
            "api": PUBLIC_API,
        },
    )
    remember_member(request, response, roomId, token)
    return response


@router.get("/room/{roomId}/recordings")
async def room_recordings_page(
    request: Request, roomId: str, secret: SecretQuery = None
) -> Response:
    entered = await _enter(request, roomId, secret)
    if isinstance(entered, Response):
        return entered
    token, claims, room = entered
    if not claims.permissions.get("canRetrieveRecordings"):
        return error_page(request, 403, "This link does not allow seeing the room's recordings.")
    api = Api.member(request, token)
    page = await api.get(f"{PUBLIC_API}/recordings", roomId=roomId, maxItems=100)
    response = render(
        request,
        "room_recordings.html",
        {
            "room": room,
            "role": claims.role,
            "recordings": page["recordings"],
            "member_token": token,
            "can_delete": bool(claims.permissions.get("canDeleteRecordings")),
            "api": PUBLIC_API,
        },
    )
    remember_member(request, response, roomId, token)
    return response


@router.get("/room/{roomId}/recordings/{recordingId}/media")
async def room_recording_media(request: Request, roomId: str, recordingId: str) -> Response:
    """The video of a recording for the room's recordings page (member token cookie)."""
    token = request.cookies.get(member_cookie(roomId))
    if not token:
        return error_page(request, 401, "Open the room's recordings link again.")
    return await recording_media(request, recordingId, {"X-Room-Member-Token": token})


@router.get("/recording/{recordingId}")
async def shared_recording_page(
    request: Request,
    recordingId: str,
    recordingSecret: SecretQuery = None,
) -> Response:
    headers: dict[str, str] = {}
    access = session_token(request)
    if access:
        headers["Authorization"] = f"Bearer {access}"
    if not recordingSecret and not access:
        return error_page(
            request,
            400,
            "This recording link is incomplete: it has no secret. Open the full link you "
            "were sent.",
            "This link is incomplete",
        )
    try:
        recording = await Api(request, headers).get(
            f"{PUBLIC_API}/recordings/{recordingId}", recordingSecret=recordingSecret
        )
    except ApiError as exc:
        if exc.status == 404:
            return error_page(
                request, 404, "This recording does not exist: it may have been deleted."
            )
        if exc.status == 400:
            return error_page(
                request,
                403,
                "This recording link is no longer valid.",
                "This link no longer works",
            )
        raise
    return render(
        request,
        "recording.html",
        {"recording": recording, "secret": recordingSecret},
    )


@router.get("/recording/{recordingId}/media")
async def shared_recording_media(
    request: Request, recordingId: str, recordingSecret: SecretQuery = None
) -> Response:
    """The video of a shared recording (its share secret, or the console session)."""
    headers: dict[str, str] = {}
    access = session_token(request)
    if access:
        headers["Authorization"] = f"Bearer {access}"
    return await recording_media(request, recordingId, headers, recordingSecret)


@router.get("/room/{roomId}/events")
async def room_events_stream(request: Request, roomId: str) -> Response:
    """The room's live events (SSE) for its meeting view or the console's room page."""
    if not _valid_room_id(roomId):
        return error_page(request, 404, "There is no room at this address.")
    headers: dict[str, str] = {}
    member = request.cookies.get(member_cookie(roomId))
    access = session_token(request)
    if access:
        headers["Authorization"] = f"Bearer {access}"
    elif member:
        headers["X-Room-Member-Token"] = member
    else:
        return error_page(request, 401, "Open the room's link again.")
    # The API decides who may follow the room: whoever may read it.
    await Api(request, headers).get(f"{PUBLIC_API}/rooms/{roomId}", fields="roomId")
    connection = request.app.state.broker._connection
    stream = request.app.state.settings.stream_name
    return StreamingResponse(
        room_events(connection, stream, roomId),
        media_type="text/event-stream",
        headers={"X-Accel-Buffering": "no"},
    )
