"""The admin console: sign in, rooms, recordings, users, your profile, settings.

Signing in is the internal API's `/auth/login`; its tokens live in HttpOnly, SameSite=Strict
cookies (`services.gateway.web.pages`), and every form carries a CSRF token.  Each page
reads and acts through the API as the signed-in user (`Api.user`), so the API's policy
rows decide what they may see and do: a room manager sees their rooms, an admin all.
Meeting control takes a room member token, as in OpenVidu Meet: the console asks the
internal API for one as the signed-in user (`POST …/rooms/{roomId}/members/token`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request, Response
from starlette.datastructures import FormData
from starlette.responses import RedirectResponse

from services.gateway.errors import ApiError
from services.gateway.web.apiclient import INTERNAL_API, PUBLIC_API, Api
from services.gateway.web.pages import (
    REFRESH_COOKIE,
    PageRoute,
    check_csrf,
    clear_session,
    error_page,
    remember_csrf,
    render,
    session_token,
    set_session,
    to_login,
)

router = APIRouter(route_class=PageRoute, include_in_schema=False)

Csrf = Annotated[str | None, Form(alias="csrf")]
Text = Annotated[str | None, Form()]

# Messages shown after a form succeeded (the query names one; no text is reflected).
FLASH = {
    "created": "Room created.",
    "updated": "Room updated.",
    "opened": "Room opened.",
    "closed": "Room closed.",
    "regenerated": "New links made: the old ones no longer work.",
    "ended": "Meeting ended.",
    "evicted": "Participant removed from the meeting.",
    "role": "Participant role changed.",
    "password": "Password changed.",
    "user_created": "User created.",
    "user_deleted": "User deleted.",
    "user_role": "Role changed.",
    "user_password": "Password reset: the user's sessions were signed out.",
    "key_deleted": "API key deleted: it no longer works.",
    "webhook_added": "Webhook added.",
    "links": "Links updated.",
    "member_added": "Member added.",
    "member_removed": "Member removed.",
    "webhook_deleted": "Webhook deleted.",
    "webhooks": "Webhook settings saved.",
    "webhook_test": "The test event was delivered.",
    "deleted": "Deleted.",
}

# What each 409 of a room deletion means, in words (the API's `successCode`s and errors).
DELETE_OUTCOMES = {
    "room_deleted": "The room was deleted.",
    "room_and_recordings_deleted": "The room and its recordings were deleted.",
    "room_closed": "The room has recordings, so it was closed instead of deleted.",
    "room_with_active_meeting_deleted": "The live meeting was ended and the room deleted.",
    "room_with_active_meeting_and_recordings_deleted": "The live meeting was ended; the room "
    "and its recordings were deleted.",
    "room_with_active_meeting_closed": "The live meeting was ended; the room has recordings, "
    "so it was closed instead of deleted.",
    "room_with_active_meeting_scheduled_to_be_deleted": "The room will be deleted when its "
    "meeting ends.",
    "room_with_active_meeting_and_recordings_scheduled_to_be_deleted": "The room and its "
    "recordings will be deleted when its meeting ends.",
    "room_with_active_meeting_scheduled_to_be_closed": "The room has recordings: it will be "
    "closed when its meeting ends.",
}


# The room's history in words: the rooms service's event names.
EVENT_WORDS = {
    "Created": "Room created",
    "Renamed": "Renamed",
    "ConfigUpdated": "Settings changed",
    "RolesUpdated": "Role permissions changed",
    "AccessUpdated": "Links changed",
    "UserAccessSet": "User access changed",
    "AutoDeletionSet": "Auto-deletion date set",
    "AutoDeletionPolicySet": "Auto-deletion policy set",
    "AutoDeletionCleared": "Auto-deletion date removed",
    "MeetingEndActionSet": "End-of-meeting action set",
    "StatusChanged": "Opened or closed",
    "MeetingActivated": "Meeting started",
    "MeetingDeactivated": "Meeting ended",
    "DeletionScheduled": "Deletion scheduled",
    "Deleted": "Room deleted",
}


def _history_entry(event: dict[str, Any]) -> dict[str, Any]:
    """One timeline line: when, what (in words), and the event's own values."""
    data = {
        k: v
        for k, v in (event.get("data") or {}).items()
        if k not in ("originator_topic", "room_id") and v not in (None, "", [], {})
    }
    return {
        "timestamp": event.get("timestamp"),
        "what": EVENT_WORDS.get(str(event.get("type")), str(event.get("type"))),
        "type": event.get("type"),
        "details": data,
    }


class Console:
    """The signed-in user of one console request and their API."""

    def __init__(self, request: Request, api: Api, me: dict[str, Any], fresh: str | None) -> None:
        self.request = request
        self.api = api
        self.me = me
        self.fresh = fresh  # a refreshed access token to store in the session cookie

    @property
    def is_admin(self) -> bool:
        return bool(self.me.get("role") == "admin")

    def page(
        self, template: str, context: dict[str, Any] | None = None, status: int = 200
    ) -> Response:
        flash = FLASH.get(self.request.query_params.get("done", ""))
        response = render(
            self.request,
            template,
            {"me": self.me, "is_admin": self.is_admin, "flash": flash, **(context or {})},
            status,
        )
        return self.finish(response)

    def redirect(self, url: str) -> Response:
        return self.finish(RedirectResponse(url, status_code=303))

    def finish(self, response: Response) -> Response:
        remember_csrf(self.request, response)
        if self.fresh:
            set_session(self.request, response, {"accessToken": self.fresh})
        return response

    async def member_token(self, room_id: str) -> str:
        """A room member token for the signed-in user (moderator for admins and owners)."""
        answer = await self.api.call(
            "POST", f"{INTERNAL_API}/rooms/{room_id}/members/token", json={}
        )
        return str(answer["token"])


async def signed_in_form(request: Request) -> tuple[Console, FormData] | Response:
    """A console form post: the signed-in user's console and the form, its CSRF checked."""
    console = await signed_in(request)
    if isinstance(console, Response):
        return console
    form = await request.form()
    check_csrf(request, str(form.get("csrf") or ""))
    return console, form


async def signed_in(request: Request) -> Console | Response:
    """The console of the signed-in user, or a redirect to the sign-in page."""
    token = session_token(request)
    fresh = None
    if token is None and request.cookies.get(REFRESH_COOKIE):
        try:
            answer = await Api(request).call(
                "POST",
                f"{INTERNAL_API}/auth/refresh",
                headers={"X-Refresh-Token": request.cookies[REFRESH_COOKIE]},
            )
            token = fresh = str(answer["accessToken"])
        except ApiError:
            token = None
    if token is None:
        return to_login(request)
    api = Api.user(request, token)
    try:
        me = await api.get(f"{INTERNAL_API}/users/me")
    except ApiError as exc:
        if exc.status == 401:
            return to_login(request)
        raise
    return Console(request, api, me, fresh)


def _safe_next(target: str | None) -> str:
    """Only a path of this site (no `//host`, no scheme)."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/overview"


# ---- sign in and out ----------------------------------------------------------------------


@router.get("/")
async def home(request: Request) -> Response:
    return RedirectResponse("/overview", status_code=303)


@router.get("/login")
async def login_page(request: Request, next: Annotated[str | None, Query()] = None) -> Response:
    response = render(request, "login.html", {"next": _safe_next(next), "error": None})
    remember_csrf(request, response)
    return response


@router.post("/login")
async def login(
    request: Request,
    csrf: Csrf = None,
    userId: Text = None,
    password: Text = None,
    next: Text = None,
) -> Response:
    check_csrf(request, csrf)
    target = _safe_next(next)
    if not userId or not password:
        response = render(
            request,
            "login.html",
            {"next": target, "error": "Enter your user name and password.", "userId": userId},
            400,
        )
        remember_csrf(request, response)
        return response
    try:
        tokens = await Api(request).call(
            "POST", f"{INTERNAL_API}/auth/login", json={"userId": userId, "password": password}
        )
    except ApiError as exc:
        message = (
            "Wrong user name or password."
            if exc.status in (401, 404, 422)
            else "Too many failed attempts: wait a minute and try again."
            if exc.status == 429
            else exc.message
        )
        response = render(
            request, "login.html", {"next": target, "error": message, "userId": userId}, 400
        )
        remember_csrf(request, response)
        return response
    if tokens.get("mustChangePassword"):
        target = "/profile?must=1"
    response = RedirectResponse(target, status_code=303)
    set_session(request, response, tokens)
    return response


@router.post("/logout")
async def logout(request: Request, csrf: Csrf = None) -> Response:
    check_csrf(request, csrf)
    refresh = request.cookies.get(REFRESH_COOKIE)
    if refresh:
        await Api(request).call(
            "POST", f"{INTERNAL_API}/auth/logout", headers={"X-Refresh-Token": refresh}
        )
    response = RedirectResponse("/login", status_code=303)
    clear_session(response)
    return response


# ---- overview -----------------------------------------------------------------------------


@router.get("/overview")
async def overview(request: Request) -> Response:
    console = await signed_in(request)
    if isinstance(console, Response):
        return console
    rooms = await console.api.get(f"{PUBLIC_API}/rooms", maxItems=100)
    recordings = await console.api.get(f"{PUBLIC_API}/recordings", maxItems=100)
    items = rooms["rooms"]
    counts = {
        "rooms": len(items),
        "more_rooms": rooms["pagination"]["isTruncated"],
        "active": sum(1 for r in items if r["status"] == "active_meeting"),
        "closed": sum(1 for r in items if r["status"] == "closed"),
        "recordings": len(recordings["recordings"]),
        "more_recordings": recordings["pagination"]["isTruncated"],
    }
    return console.page(
        "overview.html",
        {"counts": counts, "recent": items[:5], "nav": "overview"},
    )


# ---- rooms --------------------------------------------------------------------------------

ROOM_STATUSES = ("open", "active_meeting", "closed")


@router.get("/rooms")
async def rooms_page(
    request: Request,
    roomName: Annotated[str | None, Query(max_length=50)] = None,
    status: Annotated[str | None, Query()] = None,
    sort: Annotated[str, Query()] = "creationDate:desc",
    page: Annotated[str | None, Query(max_length=1000)] = None,
) -> Response:
    console = await signed_in(request)
    if isinstance(console, Response):
        return console
    sort_field, _, sort_order = sort.partition(":")
    if sort_field not in ("creationDate", "roomName") or sort_order not in ("asc", "desc"):
        return error_page(request, 400, "Sort by creation date or name, ascending or descending.")
    if status and status not in ROOM_STATUSES:
        return error_page(request, 400, "The status filter is open, active_meeting or closed.")
    listing = await console.api.get(
        f"{PUBLIC_API}/rooms",
        roomName=roomName or None,
        roomNameMatchMode="partial" if roomName else None,
        roomNameCaseInsensitive="true" if roomName else None,
        status=status or None,
        sortField=sort_field,
        sortOrder=sort_order,
        maxItems=20,
        nextPageToken=page or None,
    )
    next_token = listing["pagination"].get("nextPageToken")
    filters = {"roomName": roomName or "", "status": status or "", "sort": sort}
    next_url = (
        "/rooms?" + urlencode({**filters, "page": next_token})
        if listing["pagination"].get("isTruncated") and next_token
        else None
    )
    results = request.query_params.get("results")
    return console.page(
        "rooms.html",
        {
            "rooms": listing["rooms"],
            "filters": filters,
            "next_url": next_url,
            "first_url": "/rooms?" + urlencode(filters) if page else None,
            "statuses": ROOM_STATUSES,
            "results": results,
            "nav": "rooms",
        },
    )


@router.post("/rooms")
async def rooms_bulk_delete(request: Request) -> Response:
    """Delete the rooms ticked in the list, with the chosen policies; one result per room."""
    posted = await signed_in_form(request)
    if isinstance(posted, Response):
        return posted
    console, form = posted
    room_ids = [str(v) for v in form.getlist("roomIds")]
    if not room_ids:
        return error_page(request, 400, "Tick at least one room to delete.", "Nothing selected")
    policies = _policies(
        str(form.get("withMeeting", "fail")), str(form.get("withRecordings", "fail"))
    )
    outcomes = []
    for room_id in room_ids:
        outcomes.append(await _delete_room(console, room_id, policies))
    return console.page("bulk_result.html", {"outcomes": outcomes, "nav": "rooms"})


def _policies(with_meeting: str, with_recordings: str) -> dict[str, str]:
    if with_meeting not in ("fail", "force", "when_meeting_ends") or with_recordings not in (
        "fail",
        "force",
        "close",
    ):
        raise ApiError(400, "invalid", "Choose what happens to a live meeting and to recordings.")
    return {"withMeeting": with_meeting, "withRecordings": with_recordings}


async def _delete_room(console: Console, room_id: str, policies: dict[str, str]) -> dict[str, Any]:
    """One room's deletion outcome in words (never raised: a 409 is explained)."""
    try:
        answer = await console.api.call("DELETE", f"{PUBLIC_API}/rooms/{room_id}", params=policies)
    except ApiError as exc:
        return {"roomId": room_id, "ok": False, "message": _explain_409(exc)}
    code = str(answer.get("successCode", ""))
    return {
        "roomId": room_id,
        "ok": True,
        "message": DELETE_OUTCOMES.get(code, answer.get("message", "Done.")),
    }


def _explain_409(exc: ApiError) -> str:
    if exc.status != 409:
        return exc.message
    text = exc.message.lower()
    if "because it has recordings" in text:
        return (
            "Not deleted: the room has recordings. Choose “delete the recordings too” or "
            "“close the room instead”. (" + exc.message + ")"
        )
    if "active meeting" in text:
        return (
            "Not deleted: the room has a live meeting. Choose “end the meeting” or "
            "“delete when the meeting ends”. (" + exc.message + ")"
        )
    return exc.message


ROLE_PERMISSIONS = (
    "canRecord",
    "canRetrieveRecordings",
    "canDeleteRecordings",
    "canKickParticipants",
    "canEndMeeting",
    "canMakeModerator",
    "canShareScreen",
    "canWriteChat",
)


def _date_ms(value: str | None) -> int | None:
    """A `datetime-local` value (UTC) as epoch milliseconds."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ApiError(400, "invalid", "The auto-deletion date is not a date and time.") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _room_form(form: Any, creating: bool) -> dict[str, Any]:
    """The API body of the room form."""

    def on(name: str) -> bool:
        return form.get(name) == "on"

    name = str(form.get("roomName", "")).strip()
    if not name:
        raise ApiError(422, "invalid", "The room needs a name.")
    recording = on("recording")
    if recording and on("e2ee"):
        raise ApiError(422, "invalid", "Recording cannot be on while end-to-end encryption is on.")
    config = {
        "chat": {"enabled": on("chat")},
        "recording": {
            "enabled": recording,
            "layout": str(form.get("layout", "grid")),
            "encoding": str(form.get("encoding", "H264_720P_30")),
            "allowAccessTo": str(form.get("allowAccessTo", "admin_moderator_speaker")),
        },
        "virtualBackground": {"enabled": on("virtualBackground")},
        "e2ee": {"enabled": on("e2ee")},
        "captions": {"enabled": on("captions")},
    }
    body: dict[str, Any] = {
        "roomName": name,
        "config": config,
        "meetingEndAction": str(form.get("meetingEndAction", "none")),
        "autoDeletionPolicy": {
            "withMeeting": str(form.get("autoWithMeeting", "when_meeting_ends")),
            "withRecordings": str(form.get("autoWithRecordings", "close")),
        },
    }
    deletion = _date_ms(str(form.get("autoDeletionDate") or "") or None)
    if deletion is not None:
        body["autoDeletionDate"] = deletion
    elif not creating:
        body["clearAutoDeletionDate"] = True
    if creating:
        body["roles"] = {
            role: {"permissions": {p: on(f"{role}.{p}") for p in ROLE_PERMISSIONS}}
            for role in ("moderator", "speaker")
        }
    return body


DEFAULT_ROOM: dict[str, Any] = {
    "roomName": "",
    "config": {
        "chat": {"enabled": True},
        "recording": {
            "enabled": True,
            "layout": "grid",
            "encoding": "H264_720P_30",
            "allowAccessTo": "admin_moderator_speaker",
        },
        "virtualBackground": {"enabled": True},
        "e2ee": {"enabled": False},
        "captions": {"enabled": True},
    },
    "roles": {
        "moderator": {"permissions": {p: True for p in ROLE_PERMISSIONS}},
        "speaker": {
            "permissions": {
                p: p in ("canRetrieveRecordings", "canShareScreen", "canWriteChat")
                for p in ROLE_PERMISSIONS
            }
        },
    },
    "meetingEndAction": "none",
    "autoDeletionPolicy": {"withMeeting": "when_meeting_ends", "withRecordings": "close"},
}


def _form_context(room: dict[str, Any], error: str | None = None) -> dict[str, Any]:
    deletion = room.get("autoDeletionDate")
    local = (
        datetime.fromtimestamp(deletion / 1000, UTC).strftime("%Y-%m-%dT%H:%M")
        if isinstance(deletion, int)
        else ""
    )
    return {
        "room": room,
        "deletion_local": local,
        "permissions": ROLE_PERMISSIONS,
        "error": error,
        "nav": "rooms",
    }


@router.get("/rooms/new")
async def new_room_page(request: Request) -> Response:
    console = await signed_in(request)
    if isinstance(console, Response):
        return console
    return console.page("room_form.html", {**_form_context(DEFAULT_ROOM), "creating": True})


@router.post("/rooms/new")
async def create_room(request: Request) -> Response:
    posted = await signed_in_form(request)
    if isinstance(posted, Response):
        return posted
    console, form = posted
    try:
        body = _room_form(form, creating=True)
        room = await console.api.call("POST", f"{PUBLIC_API}/rooms", json=body)
    except ApiError as exc:
        if exc.status not in (400, 409, 422):
            raise
        echo = {**DEFAULT_ROOM, "roomName": str(form.get("roomName", ""))}
        return console.page(
            "room_form.html", {**_form_context(echo, exc.message), "creating": True}, 422
        )
    return console.redirect(f"/rooms/{room['roomId']}?done=created")


@router.get("/rooms/{roomId}")
async def room_page(request: Request, roomId: str) -> Response:
    console = await signed_in(request)
    if isinstance(console, Response):
        return console
    room = await console.api.get(f"{PUBLIC_API}/rooms/{roomId}", extraFields="config,roles")
    meeting = await _meeting(console, roomId)
    recordings = await console.api.get(f"{PUBLIC_API}/recordings", roomId=roomId, maxItems=20)
    events: list[dict[str, Any]] | None
    members: list[dict[str, Any]] | None
    try:
        history = await console.api.get(f"{PUBLIC_API}/rooms/{roomId}/history", maxItems=200)
        events = [_history_entry(e) for e in reversed(history["events"])]
        members = (await console.api.get(f"{PUBLIC_API}/rooms/{roomId}/members", maxItems=100))[
            "members"
        ]
    except ApiError as exc:
        if exc.status != 403:
            raise
        events = members = None
    return console.page(
        "room_detail.html",
        {
            "room": room,
            "meeting": meeting,
            "recordings": recordings["recordings"],
            "events": events,
            "members": members,
            "nav": "rooms",
        },
    )


async def _meeting(console: Console, room_id: str) -> dict[str, Any] | None:
    """The room's live meeting (None: none), read with a member token of the user."""
    try:
        token = await console.member_token(room_id)
        meeting: dict[str, Any] = await Api.member(console.request, token).get(
            f"{PUBLIC_API}/meetings/{room_id}"
        )
    except ApiError as exc:
        if exc.status in (403, 404):
            return None
        raise
    return meeting


@router.get("/rooms/{roomId}/participants")
async def room_participants(request: Request, roomId: str) -> Response:
    """The live meeting's participants (htmx refreshes this part of the room page)."""
    console = await signed_in(request)
    if isinstance(console, Response):
        return console
    room = await console.api.get(f"{PUBLIC_API}/rooms/{roomId}")
    return console.page(
        "participants.html", {"room": room, "meeting": await _meeting(console, roomId)}
    )


@router.post("/rooms/{roomId}")
async def room_action(request: Request, roomId: str) -> Response:
    """The room page's buttons: open, close, new links, end meeting, evict, role, delete."""
    posted = await signed_in_form(request)
    if isinstance(posted, Response):
        return posted
    console, form = posted
    action = str(form.get("action", ""))
    api = console.api
    base = f"{PUBLIC_API}/rooms/{roomId}"
    if action in ("open", "close"):
        status = "open" if action == "open" else "closed"
        await api.call("PUT", f"{base}/status", json={"status": status})
        return console.redirect(
            f"/rooms/{roomId}?done={'opened' if status == 'open' else 'closed'}"
        )
    if action == "regenerate":
        roles = [r for r in form.getlist("roles") if r in ("moderator", "speaker", "recording")]
        await api.call(
            "PUT",
            f"{base}/access",
            json={"regenerate": roles or ["moderator", "speaker", "recording"]},
        )
        return console.redirect(f"/rooms/{roomId}?done=regenerated")
    if action == "links":
        anonymous = {
            role: {"enabled": form.get(f"link.{role}") == "on"}
            for role in ("moderator", "speaker", "recording")
        }
        await api.call(
            "PUT",
            f"{base}/access",
            json={
                "access": {
                    "anonymous": anonymous,
                    "user": {"enabled": form.get("link.user") == "on"},
                }
            },
        )
        return console.redirect(f"/rooms/{roomId}?done=links")
    if action in ("add_member", "remove_member"):
        try:
            if action == "remove_member":
                member_id = str(form.get("memberId", ""))
                await api.call("DELETE", f"{base}/members/{member_id}")
                return console.redirect(f"/rooms/{roomId}?done=member_removed")
            who = str(form.get("who", "")).strip()
            body: dict[str, Any] = {"baseRole": str(form.get("baseRole", "speaker"))}
            body["userId" if form.get("kind") == "user" else "name"] = who
            await api.call("POST", f"{base}/members", json=body)
        except ApiError as exc:
            if exc.status not in (400, 404, 409, 422):
                raise
            return error_page(request, exc.status, exc.message)
        return console.redirect(f"/rooms/{roomId}?done=member_added")
    if action in ("end", "evict", "role"):
        member = Api.member(request, await console.member_token(roomId))
        meetings = f"{PUBLIC_API}/meetings/{roomId}"
        identity = str(form.get("identity", ""))
        if action == "end":
            await member.call("DELETE", meetings)
            return console.redirect(f"/rooms/{roomId}?done=ended")
        if action == "evict":
            await member.call("DELETE", f"{meetings}/participants/{identity}")
            return console.redirect(f"/rooms/{roomId}?done=evicted")
        await member.call(
            "PUT", f"{meetings}/participants/{identity}/role", json={"role": str(form.get("role"))}
        )
        return console.redirect(f"/rooms/{roomId}?done=role")
    if action == "delete":
        policies = _policies(
            str(form.get("withMeeting", "fail")), str(form.get("withRecordings", "fail"))
        )
        outcome = await _delete_room(console, roomId, policies)
        return console.page("bulk_result.html", {"outcomes": [outcome], "nav": "rooms"})
    return error_page(request, 400, "Unknown action.")


@router.get("/rooms/{roomId}/edit")
async def edit_room_page(request: Request, roomId: str) -> Response:
    console = await signed_in(request)
    if isinstance(console, Response):
        return console
    room = await console.api.get(f"{PUBLIC_API}/rooms/{roomId}", extraFields="config,roles")
    return console.page("room_form.html", {**_form_context(room), "creating": False})


@router.post("/rooms/{roomId}/edit")
async def edit_room(request: Request, roomId: str) -> Response:
    posted = await signed_in_form(request)
    if isinstance(posted, Response):
        return posted
    console, form = posted
    room = await console.api.get(f"{PUBLIC_API}/rooms/{roomId}", extraFields="config,roles")
    try:
        body = _room_form(form, creating=False)
        config = body.pop("config")
        await console.api.call("PUT", f"{PUBLIC_API}/rooms/{roomId}", json=body)
        await console.api.call(
            "PUT", f"{PUBLIC_API}/rooms/{roomId}/config", json={"config": config}
        )
    except ApiError as exc:
        if exc.status not in (400, 409, 422):
            raise
        return console.page(
            "room_form.html", {**_form_context(room, exc.message), "creating": False}, 422
        )
    return console.redirect(f"/rooms/{roomId}?done=updated")


# ---- recordings ---------------------------------------------------------------------------

RECORDING_STATUSES = (
    "starting",
    "active",
    "ending",
    "complete",
    "failed",
    "aborted",
    "limit_reached",
)


@router.get("/recordings")
async def recordings_page(
    request: Request,
    roomId: Annotated[str | None, Query(max_length=100)] = None,
    status: Annotated[str | None, Query()] = None,
    page: Annotated[str | None, Query(max_length=500)] = None,
) -> Response:
    console = await signed_in(request)
    if isinstance(console, Response):
        return console
    if status and status not in RECORDING_STATUSES:
        return error_page(request, 400, "Unknown recording status.")
    listing = await console.api.get(
        f"{PUBLIC_API}/recordings",
        roomId=roomId or None,
        status=status or None,
        maxItems=20,
        nextPageToken=page or None,
    )
    filters = {"roomId": roomId or "", "status": status or ""}
    token = listing["pagination"].get("nextPageToken")
    return console.page(
        "recordings.html",
        {
            "recordings": listing["recordings"],
            "filters": filters,
            "statuses": RECORDING_STATUSES,
            "next_url": "/recordings?" + urlencode({**filters, "page": token}) if token else None,
            "nav": "recordings",
        },
    )


@router.get("/recordings/download")
async def recordings_zip(request: Request) -> Response:
    """The ticked recordings as one ZIP: the API's `GET /recordings/download`, streamed."""
    console = await signed_in(request)
    if isinstance(console, Response):
        return console
    ids = [i for i in request.query_params.getlist("recordingIds") if i]
    if not ids:
        return error_page(request, 400, "Tick at least one recording.", "Nothing selected")
    return console.finish(
        await console.api.stream(
            f"{PUBLIC_API}/recordings/download", params={"recordingIds": ",".join(ids)}
        )
    )


@router.post("/recordings")
async def recordings_bulk_delete(request: Request) -> Response:
    posted = await signed_in_form(request)
    if isinstance(posted, Response):
        return posted
    console, form = posted
    if form.get("action") == "share":
        recording_id = str(form.get("recordingId", ""))
        private = form.get("private") == "on"
        answer = await console.api.get(
            f"{PUBLIC_API}/recordings/{recording_id}/url",
            privateAccess="true" if private else "false",
        )
        return console.page(
            "share.html",
            {"url": answer["url"], "private": private, "nav": "recordings"},
        )
    ids = [str(v) for v in form.getlist("recordingIds")]
    if not ids:
        return error_page(request, 400, "Tick at least one recording.", "Nothing selected")
    try:
        answer = await console.api.call(
            "DELETE", f"{PUBLIC_API}/recordings", params={"recordingIds": ",".join(ids)}
        )
        failed = answer.get("failed", [])
    except ApiError as exc:
        if exc.status != 400:
            raise
        failed = [{"recordingId": i, "error": exc.message} for i in ids]
    outcomes = [
        {
            "roomId": i,
            "ok": i not in {f["recordingId"] for f in failed},
            "message": next(
                (f["error"] for f in failed if f["recordingId"] == i), "Recording deleted."
            ),
        }
        for i in ids
    ]
    return console.page("bulk_result.html", {"outcomes": outcomes, "nav": "recordings"})


# ---- users, profile, settings -------------------------------------------------------------


@router.get("/users")
async def users_page(request: Request) -> Response:
    console = await signed_in(request)
    if isinstance(console, Response):
        return console
    if not console.is_admin:
        return error_page(request, 403, "Only admins manage users.")
    users = await console.api.get(f"{PUBLIC_API}/users", maxItems=100)
    return console.page("users.html", {"users": users["users"], "nav": "users", "error": None})


@router.post("/users")
async def users_action(request: Request) -> Response:
    posted = await signed_in_form(request)
    if isinstance(posted, Response):
        return posted
    console, form = posted
    action = str(form.get("action", ""))
    user = str(form.get("userId", ""))
    if action == "delete":
        await console.api.call("DELETE", f"{PUBLIC_API}/users/{user}")
        return console.redirect("/users?done=user_deleted")
    try:
        if action == "role":
            await console.api.call(
                "PUT", f"{PUBLIC_API}/users/{user}/role", json={"role": str(form.get("role"))}
            )
            return console.redirect("/users?done=user_role")
        if action == "password":
            await console.api.call(
                "PUT",
                f"{PUBLIC_API}/users/{user}/password",
                json={"newPassword": str(form.get("newPassword", ""))},
            )
            return console.redirect("/users?done=user_password")
    except ApiError as exc:
        if exc.status not in (400, 409, 422):
            raise
        users = await console.api.get(f"{PUBLIC_API}/users", maxItems=100)
        return console.page(
            "users.html", {"users": users["users"], "nav": "users", "error": exc.message}, 422
        )
    body = {
        "userId": str(form.get("userId", "")).strip(),
        "name": str(form.get("name", "")).strip(),
        "role": str(form.get("role", "room_member")),
        "password": str(form.get("password", "")),
    }
    try:
        await console.api.call("POST", f"{PUBLIC_API}/users", json=body)
    except ApiError as exc:
        if exc.status not in (400, 409, 422):
            raise
        users = await console.api.get(f"{PUBLIC_API}/users", maxItems=100)
        return console.page(
            "users.html", {"users": users["users"], "nav": "users", "error": exc.message}, 422
        )
    return console.redirect("/users?done=user_created")


@router.get("/profile")
async def profile_page(request: Request) -> Response:
    console = await signed_in(request)
    if isinstance(console, Response):
        return console
    must = request.query_params.get("must") == "1"
    return console.page("profile.html", {"nav": "profile", "error": None, "must": must})


@router.post("/profile")
async def change_password(
    request: Request,
    csrf: Csrf = None,
    currentPassword: Text = None,
    newPassword: Text = None,
) -> Response:
    console = await signed_in(request)
    if isinstance(console, Response):
        return console
    check_csrf(request, csrf)
    try:
        tokens = await console.api.call(
            "POST",
            f"{INTERNAL_API}/users/change-password",
            json={"currentPassword": currentPassword or "", "newPassword": newPassword or ""},
        )
    except ApiError as exc:
        if exc.status not in (400, 422):
            raise
        return console.page(
            "profile.html", {"nav": "profile", "error": exc.message, "must": False}, 422
        )
    response = console.redirect("/profile?done=password")
    set_session(request, response, tokens)
    return response


WEBHOOK_EVENTS = (
    "meetingStarted",
    "meetingEnded",
    "recordingStarted",
    "recordingUpdated",
    "recordingEnded",
)


async def _config_context(console: Console, **extra: Any) -> dict[str, Any]:
    return {
        "webhooks": await console.api.get(f"{INTERNAL_API}/config/webhooks"),
        "subscriptions": (await console.api.get(f"{PUBLIC_API}/webhooks"))["webhooks"],
        "events": WEBHOOK_EVENTS,
        "keys": await console.api.get(f"{INTERNAL_API}/api-keys"),
        "nav": "config",
        "error": None,
        **extra,
    }


@router.get("/config")
async def config_page(request: Request) -> Response:
    console = await signed_in(request)
    if isinstance(console, Response):
        return console
    if not console.is_admin:
        return error_page(request, 403, "Only admins change the settings.")
    return console.page("config.html", await _config_context(console))


@router.post("/config")
async def config_action(request: Request) -> Response:
    """Settings: the v3.8.0 webhook, more webhooks (3.9 line), API keys."""
    posted = await signed_in_form(request)
    if isinstance(posted, Response):
        return posted
    console, form = posted
    url = str(form.get("url", "")).strip() or None
    action = form.get("action")
    webhook_id = str(form.get("webhookId", ""))
    try:
        if action == "create_key":
            created = await console.api.call("POST", f"{INTERNAL_API}/api-keys")
            return console.page("config.html", await _config_context(console, new_key=created))
        if action == "delete_key":
            key_id = str(form.get("keyId", ""))
            await console.api.call("DELETE", f"{INTERNAL_API}/api-keys/{key_id}")
            return console.redirect("/config?done=key_deleted")
        if action == "add_webhook":
            body: dict[str, Any] = {
                "url": url or "",
                "events": [e for e in form.getlist("events") if e in WEBHOOK_EVENTS] or None,
            }
            room = str(form.get("roomId") or "").strip()
            if room:
                body["roomId"] = room
            await console.api.call("POST", f"{PUBLIC_API}/webhooks", json=body)
            return console.redirect("/config?done=webhook_added")
        if action == "delete_webhook":
            await console.api.call("DELETE", f"{PUBLIC_API}/webhooks/{webhook_id}")
            return console.redirect("/config?done=webhook_deleted")
        if action == "test_webhook":
            await console.api.call("POST", f"{PUBLIC_API}/webhooks/{webhook_id}/test")
            return console.redirect("/config?done=webhook_test")
        if action == "test":
            await console.api.call(
                "POST", f"{INTERNAL_API}/config/webhooks/test", json={"url": url or ""}
            )
            return console.redirect("/config?done=webhook_test")
        await console.api.call(
            "PUT",
            f"{INTERNAL_API}/config/webhooks",
            json={"enabled": form.get("enabled") == "on", "url": url},
        )
    except ApiError as exc:
        if exc.status not in (400, 404, 409, 422):
            raise
        return console.page("config.html", await _config_context(console, error=exc.message), 422)
    return console.redirect("/config?done=webhooks")
