"""Verify LiveKit webhooks: a JWT signed with the API secret carrying the body's SHA-256."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from google.protobuf.json_format import MessageToDict
from livekit import api
from livekit.protocol import models


class InvalidWebhookSignature(Exception):
    """Unsigned, tampered with, or signed with another key."""


def verify_livekit_webhook(
    body: bytes, authorization: str | None, api_key: str, api_secret: str
) -> dict[str, Any]:
    """The verified webhook as a flat dict (`event`, `id`, `room_name`, ...)."""
    if not authorization:
        raise InvalidWebhookSignature("missing Authorization header")
    token = authorization.removeprefix("Bearer ").strip()
    receiver = api.WebhookReceiver(api.TokenVerifier(api_key, api_secret))
    try:
        event = receiver.receive(body.decode(), token)
    except Exception as exc:  # the SDK raises bare Exceptions and JWT errors
        raise InvalidWebhookSignature(str(exc) or type(exc).__name__) from None
    raw = MessageToDict(event, preserving_proto_field_name=True)
    return {
        "event": event.event,
        "id": event.id,
        "created_at": int(event.created_at),
        "room_name": event.room.name if event.HasField("room") else "",
        "participant_identity": event.participant.identity if event.HasField("participant") else "",
        "participant_name": event.participant.name if event.HasField("participant") else "",
        "egress_id": event.egress_info.egress_id if event.HasField("egress_info") else "",
        "egress": raw.get("egress_info", {}),
        "room_end_reason": (
            models.RoomEndReason.Name(event.room_end_reason) if event.room_end_reason else ""
        ),
    }


def sign_livekit_webhook(body: bytes, api_key: str, api_secret: str) -> str:
    """The Authorization header LiveKit would send with `body` (for tests and tools)."""
    digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
    return api.AccessToken(api_key, api_secret).with_sha256(digest).to_jwt()
