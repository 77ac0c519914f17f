"""`/api/v1/config/webhooks`: the outbound webhook subscriber (OpenVidu Meet shape)."""

from __future__ import annotations

import time
import uuid
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, HttpUrl

from services.gateway.errors import ApiError
from services.gateway.webhooks import WebhookConfig, WebhookConfigStore, WebhookSender

router = APIRouter(prefix="/config/webhooks", tags=["webhooks"])


class WebhookTest(BaseModel):
    """POST /config/webhooks/test body."""

    model_config = ConfigDict(extra="forbid")

    url: HttpUrl


def _store(request: Request) -> WebhookConfigStore:
    store: WebhookConfigStore = request.app.state.webhook_store
    return store


@router.get("", summary="Webhook configuration")
async def get_webhooks(request: Request) -> WebhookConfig:
    return await _store(request).get()


@router.put("", summary="Set the webhook subscriber")
async def put_webhooks(body: WebhookConfig, request: Request) -> dict[str, Any]:
    if body.enabled and body.url is None:
        raise ApiError.invalid("url", "a URL is required when webhooks are enabled")
    await _store(request).put(body)
    return {"message": "Webhooks configuration updated", "config": body.model_dump(mode="json")}


@router.post("/test", summary="Send a signed test event to a URL")
async def test_webhook(body: WebhookTest, request: Request) -> dict[str, Any]:
    sender: WebhookSender = request.app.state.webhook_sender
    payload = {"event": "testEvent", "creationDate": int(time.time() * 1000), "data": {}}
    try:
        response = await sender.send(str(body.url), payload, str(uuid.uuid4()))
    except Exception as exc:
        raise ApiError(
            422,
            "webhook_unreachable",
            f"could not reach {body.url}: {type(exc).__name__}",
            [{"field": "url", "message": "unreachable"}],
        ) from None
    if not response.is_success:
        raise ApiError(
            422,
            "webhook_rejected",
            f"{body.url} answered {response.status_code}",
            [{"field": "url", "message": f"status {response.status_code}"}],
        )
    return {"message": "Test webhook delivered", "status": response.status_code}
