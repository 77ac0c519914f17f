"""`POST /api/v1/livekit/webhook`: verified, then forwarded to the owning service."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Request

from services.gateway.auth import unauthorized
from services.gateway.livekit_webhooks import InvalidWebhookSignature, verify_livekit_webhook
from services.gateway.rpc import RpcDep
from services.gateway.schemas import (
    LivekitApplied,
    documented,
)

router = APIRouter(prefix="/livekit", tags=["livekit"])

MEETING_EVENTS = {"participant_joined", "participant_left", "room_finished", "room_started"}
EGRESS_EVENTS = {"egress_started", "egress_updated", "egress_ended"}


@router.post(
    "/webhook",
    summary="LiveKit webhook receiver (signature-checked)",
    **documented(LivekitApplied, errors=(400,)),
)
async def livekit_webhook(
    request: Request,
    rpc: RpcDep,
    authorization: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    settings = request.app.state.settings
    body = await request.body()
    try:
        event = verify_livekit_webhook(
            body, authorization, settings.livekit_api_key, settings.livekit_api_secret
        )
    except InvalidWebhookSignature as exc:
        raise unauthorized(f"webhook rejected: {exc}") from None
    # A failure answers 5xx so LiveKit retries; replays are no-ops in the services.
    if event["event"] in MEETING_EVENTS:
        return await rpc.retrying("meetings", "livekit_webhook", event)
    if event["event"] in EGRESS_EVENTS:
        return await rpc.retrying("recordings", "livekit_webhook", event)
    return {"applied": False, "ignored": event["event"]}
