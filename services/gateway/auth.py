"""Who is calling: every credential v3.8.0 accepts, turned into a `Principal`.

Credentials: `X-API-KEY` (the bootstrap `MEETPLANE_API_KEY` or a key created
through `/api-keys`, checked by the identity service and cached briefly),
`Authorization: Bearer <access token>`, `X-Room-Member-Token`, and
`X-Refresh-Token` (refresh only).  Whether a principal may call a route is
decided in one place, `services.gateway.policy`.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from fastapi import Request
from fastapi.security import APIKeyHeader

from contracts.identity import API_KEY_MAX_LENGTH, API_KEY_PREFIX
from services.gateway.errors import ApiError
from services.gateway.revocations import RevocationFollower
from services.gateway.tokens import ExpiredToken, InvalidToken, MemberClaims, TokenService

api_key_header = APIKeyHeader(name="X-API-KEY", auto_error=False, description="API key")
access_token_header = APIKeyHeader(
    name="Authorization", auto_error=False, description="Bearer <access token>"
)
member_token_header = APIKeyHeader(
    name="X-Room-Member-Token", auto_error=False, description="room member token"
)
refresh_token_header = APIKeyHeader(
    name="X-Refresh-Token", auto_error=False, description="refresh token"
)

API_KEY_CACHE_SECONDS = 30.0


def unauthorized(message: str = "Unauthorized") -> ApiError:
    """The v3.8.0 401 body."""
    return ApiError(401, "Authentication Error", message)


def forbidden(message: str = "Insufficient permissions to access this resource") -> ApiError:
    """The v3.8.0 403 body."""
    return ApiError(403, "Authorization Error", message)


@dataclass
class Principal:
    """The authenticated caller of one request."""

    kind: Literal["none", "api_key", "user", "member"]
    user_id: str | None = None
    role: str | None = None
    session_id: str | None = None
    member: MemberClaims | None = None
    api_key_id: str | None = None
    claims: dict[str, Any] = field(default_factory=dict)

    @property
    def is_admin(self) -> bool:
        """An API key or an admin user: may do anything the API allows."""
        return self.kind == "api_key" or (self.kind == "user" and self.role == "admin")


NOBODY = Principal(kind="none")


class ApiKeyCache:
    """Recently verified API keys by hash; dropped at once when a key is revoked."""

    def __init__(self) -> None:
        self.entries: dict[str, tuple[str, float]] = {}

    def get(self, digest: str) -> str | None:
        entry = self.entries.get(digest)
        if entry is None or time.monotonic() - entry[1] > API_KEY_CACHE_SECONDS:
            return None
        return entry[0]

    def put(self, digest: str, key_id: str) -> None:
        self.entries[digest] = (key_id, time.monotonic())

    def revoke(self, key_id: str) -> None:
        for digest, (cached, _) in list(self.entries.items()):
            if cached == key_id:
                del self.entries[digest]


class Authenticator:
    """Turns request headers into a `Principal` (or a 401)."""

    def __init__(
        self, tokens: TokenService, revocations: RevocationFollower, bootstrap_key: str
    ) -> None:
        self.tokens = tokens
        self.revocations = revocations
        self.bootstrap_key = bootstrap_key
        self.api_keys = ApiKeyCache()
        revocations.on_key_revoked.append(self.api_keys.revoke)

    async def api_key(self, request: Request, key: str) -> Principal:
        """The bootstrap key, or a live key the identity service knows."""
        if self.bootstrap_key and hmac.compare_digest(key.encode(), self.bootstrap_key.encode()):
            return Principal(kind="api_key", api_key_id="bootstrap")
        if not key.startswith(API_KEY_PREFIX) or len(key) > API_KEY_MAX_LENGTH:
            raise unauthorized("Invalid API key")
        digest = hashlib.sha256(key.encode()).hexdigest()
        key_id = self.api_keys.get(digest)
        if key_id is None:
            verdict = await request.app.state.rpc("identity", "verify_api_key", {"key": key})
            if verdict["valid"]:
                key_id = str(verdict["keyId"])
                self.api_keys.put(digest, key_id)
        if key_id is None or key_id in self.revocations.state.revoked_keys:
            raise unauthorized("Invalid API key")
        return Principal(kind="api_key", api_key_id=key_id)

    def access_token(self, header: str) -> Principal:
        """A bearer access token that is genuine, unexpired and not revoked."""
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthorized("Invalid authorization header")
        try:
            claims = self.tokens.verify(token.strip(), "access")
        except ExpiredToken:
            raise unauthorized("Access token expired") from None
        except InvalidToken:
            raise unauthorized("Invalid access token") from None
        user_id, session_id = str(claims["sub"]), str(claims["sid"])
        state = self.revocations.state
        if state.session_revoked(user_id, session_id):
            raise unauthorized("Access token revoked")
        role = state.roles.get(user_id, str(claims["role"]))
        return Principal(
            kind="user", user_id=user_id, role=role, session_id=session_id, claims=claims
        )

    def member_token(self, token: str) -> Principal:
        """A room member token that is genuine, unexpired and whose member still exists."""
        try:
            claims = self.tokens.verify(token, "member")
            member = self.tokens.member_claims(token)
        except ExpiredToken:
            raise unauthorized("Room member token expired") from None
        except InvalidToken:
            raise unauthorized("Invalid room member token") from None
        state = self.revocations.state
        issued_ms = int(claims["iat"]) * 1000
        if member.member_id and state.member_revoked(member.room_id, member.member_id, issued_ms):
            raise unauthorized("Room member token revoked")
        if member.user_id and member.user_id in state.deleted_users:
            raise unauthorized("Room member token revoked")
        return Principal(kind="member", user_id=member.user_id, member=member, claims=claims)

    def refresh_token(self, token: str) -> dict[str, Any]:
        """The claims of a genuine, unexpired refresh token (the session is checked later)."""
        return self.tokens.verify(token, "refresh")


def authenticator(request: Request) -> Authenticator:
    """The app's authenticator."""
    auth: Authenticator = request.app.state.authenticator
    return auth


def principal(request: Request) -> Principal:
    """The principal the policy check stored for this request."""
    found: Principal = getattr(request.state, "principal", NOBODY)
    return found
