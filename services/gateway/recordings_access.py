"""Who may read a recording, and what of it: share-link secrets, `fields`, ids.

OpenVidu Meet v3.8.0 gives each recording two secrets.  A link with the public
secret (`GET /recordings/{id}/url?privateAccess=false`) works for anyone while
the room's `access.anonymous.recording.enabled` is on; a link with the private
secret still needs the reader's own credentials.  Without a secret the usual
credentials apply.  Links point at the recording page, `/recording/{id}`, with
the secret in `recordingSecret`; the media routes take the same parameter.
"""

from __future__ import annotations

import hmac
import re
import time
from typing import Any

from fastapi import Request

from contracts.commands import recordings as cmd
from services.gateway.auth import unauthorized
from services.gateway.errors import ApiError
from services.gateway.ratelimits import client_address, rate_limits
from services.gateway.rpc import Rpc

RECORDING_FIELDS = (
    "recordingId",
    "roomId",
    "roomName",
    "status",
    "layout",
    "encoding",
    "filename",
    "startDate",
    "endDate",
    "duration",
    "size",
    "errorCode",
    "error",
    "details",
)
# {roomId}--{egressId}--{uid}, as OpenVidu Meet validates it.
RECORDING_ID = re.compile(r"^[A-Za-z0-9_-]+?--EG_[A-Za-z0-9]+--[A-Za-z0-9]+$")


def valid_recording_id(value: str) -> str:
    """A recording id of the expected shape and length (ValueError otherwise)."""
    value = value.strip()
    if len(value) > cmd.RECORDING_ID_MAX:
        raise ValueError(f"at most {cmd.RECORDING_ID_MAX} characters")
    if not RECORDING_ID.match(value):
        raise ValueError("does not follow the expected format")
    return value


def check_recording_id(value: str, field: str = "recordingId") -> str:
    """`valid_recording_id`, or a 422 naming the field."""
    try:
        return valid_recording_id(value)
    except ValueError as exc:
        raise ApiError.invalid(field, str(exc)) from None


def recording_ids(raw: str, field: str = "recordingIds") -> list[str]:
    """A comma-separated list of 1 to 100 well-formed recording ids (duplicates dropped)."""
    ids = [part.strip() for part in raw.split(",") if part.strip()]
    if not ids:
        raise ApiError.invalid(field, "At least one recordingId is required")
    if len(ids) > 100:
        raise ApiError.invalid(field, "at most 100 recording ids")
    return list(dict.fromkeys(check_recording_id(i, field) for i in ids))


def selected_fields(*raw: str | None) -> set[str] | None:
    """The union of `fields` and `X-Fields`; unknown names are ignored as OpenVidu does."""
    names = {
        part.strip() for value in raw if value for part in value.split(",") if part.strip()
    } & set(RECORDING_FIELDS)
    return names or None


def shape(record: dict[str, Any], fields: set[str] | None = None) -> dict[str, Any]:
    """A recording as the API shows it: absent values left out, then `fields` applied."""
    shaped = {k: v for k, v in record.items() if v is not None}
    if fields:
        shaped = {k: v for k, v in shaped.items() if k in fields}
    return shaped


async def authorize_read(request: Request, rpc: Rpc, recording_id: str, secret: str | None) -> None:
    """Let a request with a share-link secret read a recording.

    Without a secret the policy table (services/gateway/policy.py) has checked the
    caller's credentials already; with one it only identified the caller.
    """
    if not secret:
        return
    # A secret that is not recognized (400) counts against the address and the recording.
    await rate_limits(request).secret_attempt(
        client_address(request),
        recording_id,
        lambda: _check_secret(request, rpc, recording_id, secret),
        {400},
    )


async def _check_secret(request: Request, rpc: Rpc, recording_id: str, secret: str) -> None:
    secrets = cmd.AccessSecrets.model_validate(
        await rpc.retrying(
            "recordings", "access_secrets", cmd.RecordingRef(recordingId=recording_id)
        )
    )
    matches = [
        hmac.compare_digest(secret.encode(), known.encode())
        for known in (secrets.publicSecret, secrets.privateSecret)
    ]
    if any(matches) and link_expired(request, secrets):
        raise ApiError(400, "Recording Error", f"Secret for recording '{recording_id}' has expired")
    if hmac.compare_digest(secret.encode(), secrets.publicSecret.encode()):
        if not secrets.anonymousAccess:
            raise anonymous_disabled(secrets.roomId)
        return
    if hmac.compare_digest(secret.encode(), secrets.privateSecret.encode()):
        principal = getattr(request.state, "principal", None)
        if principal is None or principal.kind not in ("api_key", "user"):
            raise unauthorized()
        return
    raise ApiError(
        400,
        "Recording Error",
        f"Secret '{secret}' is not recognized for recording '{recording_id}'",
    )


def link_expired(request: Request, secrets: cmd.AccessSecrets) -> bool:
    """Whether the recording's link secrets are older than `MEETPLANE_SHARE_LINK_MAX_SECONDS`."""
    max_seconds: int = request.app.state.settings.share_link_max_seconds
    if not max_seconds or secrets.issuedAt is None:
        return False
    return time.time() * 1000 - secrets.issuedAt > max_seconds * 1000


def anonymous_disabled(room_id: str) -> ApiError:
    """403: the room's anonymous recording access is off."""
    return ApiError(
        403,
        "Room Error",
        f"Anonymous access in room '{room_id}' is disabled for recordings",
    )
