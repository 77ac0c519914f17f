"""Sign and verify meetplane's JWTs: access, refresh and room member tokens.

One module so every part of the gateway (REST routes, the admin console's
sign-in, the web pages) issues and checks tokens the same way.  Tokens are
HS256-signed with the gateway's signing key; the key comes from
`MEETPLANE_AUTH_SIGNING_KEY` or is generated once into the data dir (replicas
sharing the data dir agree on it).  Rotation: put the old key in
`MEETPLANE_AUTH_PREVIOUS_SIGNING_KEY` and a new one in
`MEETPLANE_AUTH_SIGNING_KEY`; tokens signed with the old key keep working until
they expire (one token lifetime), new tokens use the new key.

A room member token asked for with `joinMeeting` is, as in OpenVidu Meet, a
LiveKit token: the meetings service signs it with the LiveKit credentials, with
the video grant to join the room and the member claims in its metadata.  The
same token is the holder's `X-Room-Member-Token`; `verify` accepts it when the
LiveKit key and secret check out.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from services.runtime.secrets import data_dir_secret

ALGORITHM = "HS256"
ISSUER = "meetplane"
ACCESS, REFRESH, MEMBER = "access", "refresh", "member"


class InvalidToken(Exception):
    """Not a token of ours: bad signature, wrong type, malformed."""


class ExpiredToken(InvalidToken):
    """A genuine token past its expiry."""


def key_id(key: str) -> str:
    """A short public id of a signing key (the JWT `kid` header)."""
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def load_signing_key(configured: str | None, data_dir: Path) -> str:
    """The configured key, or one generated once (exclusively, mode 0600) in the data dir."""
    return configured or data_dir_secret(data_dir, "auth-signing-key", 48)


@dataclass(frozen=True)
class MemberClaims:
    """What a room member token says: which room, who, with which permissions."""

    room_id: str
    identity: str
    kind: str  # "member" | "anonymous" | "user"
    role: str  # base role: moderator | speaker | recording
    permissions: dict[str, bool]
    member_id: str | None = None
    user_id: str | None = None
    participant_name: str | None = None
    joined: bool = False  # a LiveKit join token (joinMeeting), not only an API credential

    def payload(self) -> dict[str, Any]:
        """The claims as they travel (in our JWT, or in a LiveKit token's metadata)."""
        return {
            "typ": MEMBER,
            "sub": self.identity,
            "room": self.room_id,
            "kind": self.kind,
            "role": self.role,
            "permissions": self.permissions,
            "memberId": self.member_id,
            "userId": self.user_id,
            "name": self.participant_name,
        }


class TokenService:
    """Issues and verifies the gateway's tokens with the current (and previous) key."""

    def __init__(
        self,
        key: str,
        previous_key: str | None = None,
        access_ttl: int = 900,
        member_ttl: int = 6 * 3600,
        livekit: tuple[str, str] | None = None,
    ) -> None:
        self.livekit = livekit  # (API key, secret) of the LiveKit join tokens
        self.keys = {key_id(key): key}
        if previous_key:
            self.keys[key_id(previous_key)] = previous_key
        self.current = key
        self.access_ttl = access_ttl
        self.member_ttl = member_ttl

    def _sign(self, claims: dict[str, Any], ttl: int, now: float | None = None) -> str:
        issued = int(now if now is not None else time.time())
        payload = {
            "iss": ISSUER,
            "iat": issued,
            "exp": issued + ttl,
            "jti": uuid.uuid4().hex,
            **claims,
        }
        return jwt.encode(payload, self.current, ALGORITHM, headers={"kid": key_id(self.current)})

    def verify(self, token: str, token_type: str) -> dict[str, Any]:
        """The claims of a genuine, unexpired token of `token_type`; raises otherwise."""
        try:
            header = jwt.get_unverified_header(token)
            key = self.keys.get(str(header.get("kid")))
            if key is None and token_type == MEMBER and "kid" not in header and self.livekit:
                return self._verify_join_token(token)
            if key is None:
                raise InvalidToken("signed with an unknown key")
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                options={"require": ["exp", "iat", "typ"]},
            )
        except jwt.ExpiredSignatureError:
            raise ExpiredToken("token expired") from None
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc)) from None
        if claims.get("typ") != token_type:
            raise InvalidToken(f"not a {token_type} token")
        return claims

    def _verify_join_token(self, token: str) -> dict[str, Any]:
        """The member claims of a LiveKit join token signed by the meetings service."""
        assert self.livekit is not None
        api_key, secret = self.livekit
        try:
            claims = jwt.decode(
                token,
                secret,
                algorithms=[ALGORITHM],
                issuer=api_key,
                options={"require": ["exp", "nbf", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise ExpiredToken("token expired") from None
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc)) from None
        try:
            member = json.loads(claims.get("metadata") or "{}").get("member")
        except (ValueError, AttributeError):
            member = None
        grant = claims.get("video") or {}
        if (
            not isinstance(member, dict)
            or member.get("typ") != MEMBER
            or member.get("room") != grant.get("room")
        ):
            raise InvalidToken("not a room member token")
        return {
            **member,
            "sub": claims["sub"],
            "iat": claims["nbf"],
            "exp": claims["exp"],
            "joined": True,
        }

    # ---- users ---------------------------------------------------------------------------

    def access_token(
        self, user_id: str, role: str, session_id: str, now: float | None = None
    ) -> str:
        """A short-lived token for `Authorization: Bearer`."""
        claims = {"typ": ACCESS, "sub": user_id, "role": role, "sid": session_id}
        return self._sign(claims, self.access_ttl, now)

    def refresh_token(self, user_id: str, session_id: str, expires_at_ms: int) -> str:
        """A token for `X-Refresh-Token`, valid as long as the session."""
        now = time.time()
        ttl = max(1, int(expires_at_ms / 1000 - now))
        return self._sign({"typ": REFRESH, "sub": user_id, "sid": session_id}, ttl, now)

    # ---- room members --------------------------------------------------------------------

    def member_token(self, claims: MemberClaims, now: float | None = None) -> str:
        """A token for `X-Room-Member-Token`: a room and the holder's permissions in it."""
        return self._sign(claims.payload(), self.member_ttl, now)

    def member_claims(self, token: str) -> MemberClaims:
        """Verify a member token and read it."""
        claims = self.verify(token, MEMBER)
        return MemberClaims(
            room_id=str(claims["room"]),
            identity=str(claims["sub"]),
            kind=str(claims["kind"]),
            role=str(claims["role"]),
            permissions=dict(claims.get("permissions") or {}),
            member_id=claims.get("memberId"),
            user_id=claims.get("userId"),
            participant_name=claims.get("name"),
            joined=bool(claims.get("joined")),
        )
