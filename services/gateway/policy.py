"""Authorization in one place: the policy table (route, credential kind, permission).

Every route of the gateway has exactly one entry in `POLICIES`, keyed by API
(public, internal, root), method and path template.  `authorize` — a
dependency of the whole app — finds the entry of the matched route,
authenticates the caller and applies the entry; a route without an entry
refuses every request (and `check_policies` refuses to start the app).  The
table is also the documentation of who may do what (README, "Authorization").

Outcomes: no credential, or a credential the route does not accept at all, or a
wrong/expired/revoked one → 401; an accepted kind of credential without the
right (role, ownership, membership, permission, other room) → 403.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Request
from fastapi.routing import APIRoute

from services.gateway.api import (
    INTERNAL_API,
    INTERNAL_API_PREFIXES,
    PUBLIC_API,
    PUBLIC_API_PREFIXES,
)
from services.gateway.auth import (
    NOBODY,
    Principal,
    access_token_header,
    api_key_header,
    authenticator,
    forbidden,
    member_token_header,
    unauthorized,
)
from services.gateway.errors import ApiError
from services.gateway.permissions import member_permissions, role_permissions
from services.gateway.ratelimits import client_address, rate_limits

ALL_ROLES = frozenset({"admin", "room_manager", "room_member"})
ADMIN_ROLE = frozenset({"admin"})
RoomSource = Literal["path", "recording", "body"]


@dataclass(frozen=True)
class Policy:
    """Who may call one route.

    api_key: `X-API-KEY` is accepted (and grants everything the route does).
    roles: user roles (access token) allowed on any resource of the route.
    owner: the owner of the route's room (access token) is allowed.
    room_user: a user who may enter the room (a member of it, or any user while the
        room's user access is on) is allowed if their permissions in the room grant
        this permission ("*": any such user).  A member's permissions are its base
        role's adjusted by its overrides; user access gives the speaker role's.
    member: `X-Room-Member-Token` of the route's room is accepted if it grants this
        permission ("*": any member token of the room).
    scoped: the route lists or acts on several rooms' resources; users and member
        tokens pass here and the route keeps only what they may see (`scopes`).
    room: where the route's room id comes from (for owner/room_user/member checks).
    public: no credential is looked at (login, health, link-secret joins, webhooks
        with their own signatures).
    optional: credentials are checked when present, but none is needed.
    refresh: the route takes `X-Refresh-Token` (checked by the route; 400 if absent).
    share_link: a `recordingSecret` query parameter (a recording's share-link secret,
        which the route checks) stands in for the route's rule: a public secret needs
        no credential, a private one any API key or signed-in user.
    signed: the request's own signature is the credential (LiveKit webhooks; the
        route answers 401 without a valid one).
    page: a web page (services/gateway/web): it takes no credential itself, but acts only
        through API routes, called in-process with the browser's credential (a room
        link's secret or member token, the console's session cookie); each of those
        calls is checked by its own row here.
    """

    api_key: bool = False
    roles: frozenset[str] = field(default_factory=frozenset)
    owner: bool = False
    room_user: str | None = None
    member: str | None = None
    room: RoomSource | None = None
    public: bool = False
    optional: bool = False
    refresh: bool = False
    share_link: bool = False
    signed: bool = False
    scoped: bool = False
    page: bool = False

    @property
    def accepts_users(self) -> bool:
        """Whether an access token is a credential this route knows."""
        return bool(self.roles) or self.owner or self.room_user is not None

    def describe(self) -> str:
        """One README table cell."""
        if self.signed:
            return "LiveKit's signature"
        if self.page:
            return "web page: each API call it makes is checked by that route's row"
        if self.public:
            return "anyone (no credential)"
        if self.refresh:
            return "`X-Refresh-Token`"
        parts = []
        if self.api_key:
            parts.append("API key")
        if self.roles == ALL_ROLES and self.scoped:
            parts.append("any user (their rooms only)")
        elif self.roles == ALL_ROLES:
            parts.append("any user")
        elif self.roles:
            parts.append(" / ".join(sorted(self.roles)))
        if self.owner:
            parts.append("room owner")
        if self.room_user == "*":
            parts.append("users with room access")
        elif self.room_user:
            parts.append(f"users with room access and `{self.room_user}`")
        room = "its room" if self.scoped else "the room"
        if self.member == "*":
            parts.append(f"member token of {room}")
        elif self.member:
            parts.append(f"member token of {room} with `{self.member}`")
        if self.optional:
            parts.append("or none")
        if self.share_link:
            parts.append("or a share link")
        return ", ".join(parts)


PUBLIC = Policy(public=True)
PAGE = Policy(public=True, page=True)
ADMIN = Policy(api_key=True, roles=ADMIN_ROLE)
ADMIN_USER = Policy(roles=ADMIN_ROLE)
SIGNED_IN = Policy(roles=ALL_ROLES)
ROOM_CREATE = Policy(api_key=True, roles=frozenset({"admin", "room_manager"}))
ROOM_LIST = Policy(api_key=True, roles=ALL_ROLES)
ROOM_MANAGE = Policy(api_key=True, roles=ADMIN_ROLE, owner=True, room="path")
ROOM_READ = Policy(
    api_key=True, roles=ADMIN_ROLE, owner=True, room_user="*", member="*", room="path"
)
MEMBER_READ = Policy(api_key=True, roles=ADMIN_ROLE, owner=True, member="*", room="path")


def _meeting(permission: str) -> Policy:
    """Meeting control: an API key or a member token of the room (3.9 meeting-control spec)."""
    return Policy(api_key=True, member=permission, room="path")


def _recording(permission: str, share_link: bool = False) -> Policy:
    """One recording: API key, admin, the owner of its room, users and members of its room
    with the permission; reads also with the recording's share-link secret."""
    return Policy(
        api_key=True,
        roles=ADMIN_ROLE,
        owner=True,
        room_user=permission,
        member=permission,
        room="recording",
        share_link=share_link,
    )


def _recordings(permission: str) -> Policy:
    """Several recordings: API key, any user or member token, narrowed to what they may see."""
    return Policy(api_key=True, roles=ALL_ROLES, member=permission, scoped=True)


# Reading a recording: by credentials, or with its share-link secret (`recordingSecret`).
SHARED_RECORDING = _recording("canRetrieveRecordings", share_link=True)
# Who may open a private share link: any API key or signed-in user.
PRIVATE_LINK = Policy(api_key=True, roles=ALL_ROLES)

Key = tuple[str, str, str]  # (api, method, path template)

POLICIES: dict[Key, Policy] = {
    # ---- users (public API) ----
    ("public", "POST", "/users"): ADMIN,
    ("public", "GET", "/users"): ADMIN,
    ("public", "DELETE", "/users"): ADMIN,
    ("public", "GET", "/users/{userId}"): ADMIN,
    ("public", "DELETE", "/users/{userId}"): ADMIN,
    ("public", "PUT", "/users/{userId}/password"): ADMIN,
    ("public", "PUT", "/users/{userId}/role"): ADMIN,
    # ---- rooms ----
    ("public", "POST", "/rooms"): ROOM_CREATE,
    ("public", "GET", "/rooms"): ROOM_LIST,
    ("public", "DELETE", "/rooms"): ROOM_CREATE,
    ("public", "GET", "/rooms/{roomId}"): ROOM_READ,
    ("public", "PUT", "/rooms/{roomId}"): ROOM_MANAGE,
    ("public", "DELETE", "/rooms/{roomId}"): ROOM_MANAGE,
    ("public", "GET", "/rooms/{roomId}/config"): ROOM_READ,
    ("public", "PUT", "/rooms/{roomId}/config"): ROOM_MANAGE,
    ("public", "PUT", "/rooms/{roomId}/status"): ROOM_MANAGE,
    ("public", "PUT", "/rooms/{roomId}/roles"): ROOM_MANAGE,
    ("public", "PUT", "/rooms/{roomId}/access"): ROOM_MANAGE,
    ("public", "GET", "/rooms/{roomId}/history"): ROOM_MANAGE,
    ("public", "POST", "/rooms/{roomId}/join"): PUBLIC,
    # ---- room members ----
    ("public", "POST", "/rooms/{roomId}/members"): ROOM_MANAGE,
    ("public", "GET", "/rooms/{roomId}/members"): ROOM_MANAGE,
    ("public", "DELETE", "/rooms/{roomId}/members"): ROOM_MANAGE,
    ("public", "GET", "/rooms/{roomId}/members/{memberId}"): MEMBER_READ,
    ("public", "PUT", "/rooms/{roomId}/members/{memberId}"): ROOM_MANAGE,
    ("public", "DELETE", "/rooms/{roomId}/members/{memberId}"): ROOM_MANAGE,
    ("internal", "POST", "/rooms/{roomId}/members/token"): Policy(
        optional=True, roles=ADMIN_ROLE, owner=True, room_user="*", member="*", room="path"
    ),
    ("internal", "POST", "/rooms/{roomId}/members/token/refresh"): Policy(member="*", room="path"),
    # ---- meetings ----
    ("public", "GET", "/meetings/{roomId}"): _meeting("*"),
    ("public", "GET", "/meetings/{roomId}/participants"): _meeting("*"),
    ("public", "GET", "/meetings/{roomId}/participants/{identity}"): _meeting("*"),
    ("public", "DELETE", "/meetings/{roomId}"): _meeting("canEndMeeting"),
    ("public", "DELETE", "/meetings/{roomId}/participants/{identity}"): _meeting(
        "canKickParticipants"
    ),
    ("public", "POST", "/meetings/{roomId}/participants/{identity}/leave"): _meeting("*"),
    # v3.8.0's internal copies: member tokens only.
    ("internal", "DELETE", "/meetings/{roomId}"): Policy(member="canEndMeeting", room="path"),
    ("internal", "DELETE", "/meetings/{roomId}/participants/{identity}"): Policy(
        member="canKickParticipants", room="path"
    ),
    ("internal", "PUT", "/meetings/{roomId}/participants/{identity}/role"): Policy(
        member="canMakeModerator", room="path"
    ),
    ("public", "PUT", "/meetings/{roomId}/participants/{identity}/role"): _meeting(
        "canMakeModerator"
    ),
    # ---- recordings (v3.8.0: start and stop take no access token) ----
    ("public", "POST", "/recordings"): Policy(api_key=True, member="canRecord", room="body"),
    ("public", "GET", "/recordings"): _recordings("canRetrieveRecordings"),
    ("public", "DELETE", "/recordings"): _recordings("canDeleteRecordings"),
    ("public", "GET", "/recordings/download"): _recordings("canRetrieveRecordings"),
    ("public", "GET", "/recordings/{recordingId}"): SHARED_RECORDING,
    ("public", "DELETE", "/recordings/{recordingId}"): _recording("canDeleteRecordings"),
    ("public", "POST", "/recordings/{recordingId}/stop"): Policy(
        api_key=True, member="canRecord", room="recording"
    ),
    ("public", "GET", "/recordings/{recordingId}/url"): _recording("canRetrieveRecordings"),
    # Revoking links takes what deleting the recording takes.
    ("public", "DELETE", "/recordings/{recordingId}/url"): _recording("canDeleteRecordings"),
    ("public", "GET", "/recordings/{recordingId}/download"): SHARED_RECORDING,
    ("public", "GET", "/recordings/{recordingId}/media"): SHARED_RECORDING,
    # ---- webhooks: v3.8.0's global config (internal API), the 3.9 line's webhook
    # resources, and their delivery logs (meetplane) ----
    **{
        ("internal", method, f"/config/webhooks{path}"): ADMIN
        for method, path in (
            ("GET", ""),
            ("PUT", ""),
            ("POST", "/test"),
            ("GET", "/deliveries"),
            ("GET", "/deliveries/{deliveryId}"),
            ("POST", "/deliveries/{deliveryId}/resend"),
        )
    },
    ("public", "POST", "/webhooks"): ADMIN,
    ("public", "GET", "/webhooks"): ADMIN,
    ("public", "GET", "/webhooks/{webhookId}"): ADMIN,
    ("public", "PUT", "/webhooks/{webhookId}"): ADMIN,
    ("public", "DELETE", "/webhooks/{webhookId}"): ADMIN,
    ("public", "POST", "/webhooks/{webhookId}/test"): ADMIN,
    ("public", "GET", "/webhooks/{webhookId}/deliveries"): ADMIN,
    ("public", "GET", "/webhooks/{webhookId}/deliveries/{deliveryId}"): ADMIN,
    ("public", "POST", "/webhooks/{webhookId}/deliveries/{deliveryId}/resend"): ADMIN,
    ("public", "POST", "/livekit/webhook"): Policy(public=True, signed=True),
    # ---- auth, API keys, own account (internal API) ----
    ("internal", "POST", "/auth/login"): PUBLIC,
    ("internal", "POST", "/auth/logout"): PUBLIC,
    ("internal", "POST", "/auth/refresh"): Policy(refresh=True),
    ("internal", "POST", "/api-keys"): ADMIN_USER,
    ("internal", "GET", "/api-keys"): ADMIN_USER,
    ("internal", "DELETE", "/api-keys"): ADMIN_USER,
    ("internal", "DELETE", "/api-keys/{keyId}"): ADMIN_USER,
    ("internal", "GET", "/users/me"): SIGNED_IN,
    ("internal", "POST", "/users/change-password"): SIGNED_IN,
    # ---- operations ----
    ("root", "GET", "/healthz"): PUBLIC,
    ("root", "GET", "/readyz"): PUBLIC,
    ("root", "GET", "/readyz/platform"): PUBLIC,
    ("root", "GET", "/metrics"): PUBLIC,
    ("root", "GET", "/asyncapi"): PUBLIC,
    # ---- web pages (services/gateway/web) ----
    **{
        ("root", method, path): PAGE
        for method, path in (
            ("GET", "/docs"),
            ("GET", "/redoc"),
            ("GET", "/room/{roomId}"),
            ("GET", "/room/{roomId}/recordings"),
            ("GET", "/room/{roomId}/events"),
            ("POST", "/room/{roomId}/join"),
            ("GET", "/room/{roomId}/recordings/{recordingId}/media"),
            ("GET", "/recording/{recordingId}"),
            ("GET", "/recording/{recordingId}/media"),
            ("GET", "/"),
            ("GET", "/login"),
            ("POST", "/login"),
            ("POST", "/logout"),
            ("GET", "/overview"),
            ("GET", "/rooms"),
            ("POST", "/rooms"),
            ("GET", "/rooms/new"),
            ("POST", "/rooms/new"),
            ("GET", "/rooms/{roomId}"),
            ("POST", "/rooms/{roomId}"),
            ("GET", "/rooms/{roomId}/participants"),
            ("GET", "/rooms/{roomId}/edit"),
            ("POST", "/rooms/{roomId}/edit"),
            ("GET", "/recordings"),
            ("POST", "/recordings"),
            ("GET", "/recordings/download"),
            ("GET", "/users"),
            ("POST", "/users"),
            ("GET", "/profile"),
            ("POST", "/profile"),
            ("GET", "/config"),
            ("POST", "/config"),
        )
    },
}


def policy_table() -> str:
    """The table as Markdown rows (README, "Users, sign-in and authorization")."""
    prefixes = {"public": PUBLIC_API, "internal": INTERNAL_API, "root": ""}
    rows = ["| method and path | who may call it |", "|---|---|"]
    for (api, method, path), policy in POLICIES.items():
        rows.append(f"| `{method} {prefixes[api]}{path}` | {policy.describe()} |")
    return "\n".join(rows)


def api_of(path: str) -> tuple[str, str]:
    """Which API a request path is under, and the path below its prefix."""
    for api, prefixes in (("public", PUBLIC_API_PREFIXES), ("internal", INTERNAL_API_PREFIXES)):
        for prefix in prefixes:
            if path == prefix or path.startswith(prefix + "/"):
                return api, path[len(prefix) :] or "/"
    return "root", path


def route_key(path: str, method: str) -> Key:
    """The policy key of a mounted route path (`/meet/api/v1/rooms` → public, /rooms)."""
    api, rest = api_of(path)
    return api, method.upper(), rest


def documented_routes(app: FastAPI) -> list[Key]:
    """Every route of the OpenAPI document as a policy key."""
    methods = {"get", "put", "post", "delete", "patch", "head", "options"}
    return [
        route_key(path, method)
        for path, item in app.openapi()["paths"].items()
        for method in item
        if method in methods
    ]


def check_policies(app: FastAPI) -> None:
    """Refuse to build an app with a documented route the table does not cover."""
    missing = [" ".join(key) for key in documented_routes(app) if key not in POLICIES]
    if missing:
        raise RuntimeError(f"routes without an authorization policy: {', '.join(missing)}")


# ---- the check ------------------------------------------------------------------------------


async def _room_id(request: Request, source: RoomSource | None) -> str | None:
    if source == "path":
        return request.path_params.get("roomId")
    if source == "body":
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            return None
        value = body.get("roomId") if isinstance(body, dict) else None
        return value if isinstance(value, str) else None
    if source == "recording":
        recording_id = request.path_params.get("recordingId")
        if not recording_id:
            return None
        record = await request.app.state.rpc.retrying(
            "recordings", "get", {"recordingId": recording_id}
        )
        return str(record["roomId"])
    return None


async def _room(request: Request, room_id: str) -> dict[str, Any]:
    cached: dict[str, Any] | None = getattr(request.state, "room_record", None)
    if cached is None or cached.get("roomId") != room_id:
        cached = await request.app.state.rpc.retrying("rooms", "get", {"roomId": room_id})
        request.state.room_record = cached
    assert cached is not None
    return cached


@dataclass(frozen=True)
class RoomAccess:
    """How a signed-in user may enter a room: as a member, or through user access."""

    role: str
    permissions: dict[str, bool]
    member: dict[str, Any] | None = None


async def user_room_access(
    request: Request, room: dict[str, Any], user_id: str | None
) -> RoomAccess | None:
    """A user's role and permissions in a room they may enter (None: they may not).

    A member has its base role's permissions adjusted by its overrides; while the
    room's user access is on, any other user has the speaker role's.  (Admins and
    the owner are decided before this is asked.)
    """
    if user_id is None:
        return None
    try:
        member = await request.app.state.rpc.retrying(
            "identity", "member_of", {"roomId": room["roomId"], "userId": user_id}
        )
    except ApiError as exc:
        if exc.status != 404:
            raise
    else:
        return RoomAccess(member["baseRole"], member_permissions(room, member), member)
    if room.get("userAccess"):
        return RoomAccess("speaker", role_permissions(room, "speaker"))
    return None


async def user_room_permissions(
    request: Request, room: dict[str, Any], user_id: str | None
) -> dict[str, bool] | None:
    """A user's permissions in a room (None: they may not enter it)."""
    access = await user_room_access(request, room, user_id)
    return None if access is None else access.permissions


def grants(permissions: dict[str, bool] | None, wanted: str) -> bool:
    """Whether permissions (None: no access at all) include `wanted` ("*": any access)."""
    return permissions is not None and (wanted == "*" or bool(permissions.get(wanted)))


async def _user_allowed(request: Request, policy: Policy, who: Principal) -> bool:
    if who.role in policy.roles:
        return True
    if not (policy.owner or policy.room_user):
        return False
    room_id = await _room_id(request, policy.room)
    if room_id is None:
        return False
    room = await _room(request, room_id)
    if policy.owner and room.get("owner") == who.user_id:
        return True
    if policy.room_user:
        return grants(await user_room_permissions(request, room, who.user_id), policy.room_user)
    return False


async def _member_allowed(request: Request, policy: Policy, who: Principal) -> bool:
    assert who.member is not None and policy.member is not None
    if policy.room is not None:
        room_id = await _room_id(request, policy.room)
        if room_id != who.member.room_id:
            return False
    return grants(who.member.permissions, policy.member)


async def _authenticate(request: Request, policy: Policy) -> Principal | None:
    """The caller by the first credential present that this route accepts (None: none).

    Invalid credentials count against the caller's address (`ratelimits`), and each
    request with an API key against that key's budget.
    """
    headers = request.headers
    if not any(h in headers for h in ("X-API-KEY", "Authorization", "X-Room-Member-Token")):
        return None
    limits = rate_limits(request)
    who = await limits.credential_attempt(
        client_address(request), lambda: _credential(request, policy)
    )
    if who.kind == "api_key" and who.api_key_id:
        await limits.api_key_request(who.api_key_id)
    return who


async def _credential(request: Request, policy: Policy) -> Principal:
    auth = authenticator(request)
    headers = request.headers
    key = headers.get("X-API-KEY")
    bearer = headers.get("Authorization")
    token = headers.get("X-Room-Member-Token")
    if key is not None and policy.api_key:
        return await auth.api_key(request, key)
    if bearer is not None and policy.accepts_users:
        return auth.access_token(bearer)
    if token is not None and policy.member is not None:
        return auth.member_token(token)
    # A credential this route does not take: refused as not accepted here.
    raise unauthorized("This credential is not accepted here")


async def authorize(
    request: Request,
    _key: Annotated[str | None, Depends(api_key_header)] = None,
    _bearer: Annotated[str | None, Depends(access_token_header)] = None,
    _member: Annotated[str | None, Depends(member_token_header)] = None,
) -> None:
    """Apply the route's policy; the principal goes to `request.state.principal`."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    api, _ = api_of(request.scope["path"])  # what `request.url.path` is, without building a URL
    policy = POLICIES.get((api, request.method, route.path_format))
    if policy is None:
        raise forbidden("This route has no authorization policy")
    request.state.principal = NOBODY
    if policy.public or policy.refresh:
        return
    if policy.share_link and request.query_params.get("recordingSecret"):
        # The route checks the secret; a private one needs the caller known here (a
        # public one ignores credentials, as OpenVidu Meet's anonymous access does).
        try:
            request.state.principal = await _authenticate(request, PRIVATE_LINK) or NOBODY
        except ApiError as exc:
            if exc.status != 401:
                raise
        return
    who = await _authenticate(request, policy)
    if who is None:
        if policy.optional:
            return
        raise unauthorized()
    request.state.principal = who
    if who.kind == "api_key":
        return
    if who.kind == "user" and await _user_allowed(request, policy, who):
        return
    if who.kind == "member" and await _member_allowed(request, policy, who):
        return
    raise forbidden()


AuthorizeDep = Depends(authorize)
__all__ = ["POLICIES", "ApiError", "AuthorizeDep", "Policy", "check_policies"]
