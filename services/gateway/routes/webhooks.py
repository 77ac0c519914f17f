"""Webhook routes: v3.8.0's global config (internal API) and the 3.9 `/webhooks` resources.

Both kinds of subscriber share one delivery machinery (`services.gateway.webhooks`);
each has a delivery log an admin can read and re-send from (meetplane extension:
`…/deliveries`, `…/deliveries/{deliveryId}/resend`).
"""

from __future__ import annotations

import re
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, HttpUrl, StrictBool, TypeAdapter

from services.gateway.api import PUBLIC_API
from services.gateway.errors import ApiError
from services.gateway.schemas import Delivery as DeliveryBody
from services.gateway.schemas import (
    DeliveryList,
    Message,
    WebhookConfig,
    WebhookList,
    documented,
)
from services.gateway.schemas import Webhook as WebhookBody
from services.gateway.webhooks import wire
from services.gateway.webhooks.delivery import Dispatcher, Sender, test_payload
from services.gateway.webhooks.ssrf import FORBIDDEN_REASON
from services.gateway.webhooks.store import (
    GLOBAL,
    MAX_WEBHOOKS,
    Delivery,
    GlobalWebhook,
    Webhook,
    WebhookStore,
    new_webhook_id,
)

# Who may call these: the policy table (services/gateway/policy.py).
config_router = APIRouter(prefix="/config/webhooks", tags=["webhooks"])
router = APIRouter(prefix="/webhooks", tags=["webhooks"])

_HTTP_URL: TypeAdapter[HttpUrl] = TypeAdapter(HttpUrl)


def _http_url(value: str) -> str:
    # Validated as an http(s) URL but kept as written (no added trailing slash).
    if not value.lower().startswith(("http://", "https://")):
        raise ValueError("URL must start with http:// or https://")
    _HTTP_URL.validate_python(value)
    return value


Url = Annotated[str, Field(min_length=1, max_length=2000), AfterValidator(_http_url)]
WebhookEvent = Annotated[str, AfterValidator(lambda v: _event(v))]
_WEBHOOK_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


async def _webhook_id(webhookId: Annotated[str, Path()]) -> str:
    # An id that cannot exist is a 404, as 3.9 documents (no 422).
    if not _WEBHOOK_ID.fullmatch(webhookId):
        raise ApiError(
            404,
            "Webhook Error",
            f"Webhook '{webhookId[:64]}' does not exist",
            code="webhook_not_found",
        )
    return webhookId


WebhookIdPath = Annotated[str, Depends(_webhook_id)]
DeliveryIdPath = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9-]+$")]
MaxItems = Annotated[int, Query(ge=1, le=100)]


def _event(value: str) -> str:
    if value not in wire.FILTER_EVENTS:
        raise ValueError(f"Input should be one of: {', '.join(wire.FILTER_EVENTS)}")
    return value


class WebhooksConfigBody(BaseModel):
    """PUT /config/webhooks body (v3.8.0 `webhooks-config`)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    enabled: StrictBool
    url: Url | None = None


class TestUrlBody(BaseModel):
    """POST /config/webhooks/test body."""

    model_config = ConfigDict(extra="forbid", strict=True)

    url: Url


class WebhookOptions(BaseModel):
    """POST /webhooks and PUT /webhooks/{id} body (3.9 `webhook-options`)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    url: Url
    events: Annotated[list[WebhookEvent], Field(min_length=1, max_length=20)] | None = None
    roomId: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    enabled: StrictBool = True


def _store(request: Request) -> WebhookStore:
    store: WebhookStore = request.app.state.webhook_store
    return store


def _dispatcher(request: Request) -> Dispatcher:
    dispatcher: Dispatcher = request.app.state.webhook_dispatcher
    return dispatcher


def _config(config: GlobalWebhook) -> dict[str, Any]:
    return config.model_dump(exclude_none=True)


def _unreachable(url: str, reason: str) -> ApiError:
    return ApiError(400, "Webhook Error", f"Webhook URL '{url}' is invalid: {reason}")


async def _public_only(request: Request, url: str | None) -> None:
    """400 when the URL's host is an internal address (see webhooks/ssrf.py)."""
    sender: Sender = request.app.state.webhook_sender
    if url and await sender.forbidden(url):
        raise _unreachable(url, FORBIDDEN_REASON)


async def _send_test(request: Request, url: str) -> None:
    sender: Sender = request.app.state.webhook_sender
    await _public_only(request, url)
    attempt = await sender.post(url, test_payload(), None)
    if attempt.error is not None:
        raise _unreachable(url, attempt.error)


def _delivery(record: Delivery) -> dict[str, Any]:
    return record.model_dump(exclude_none=True)


# ---- v3.8.0 global webhook (internal API) -------------------------------------------------


@config_router.get("", summary="Get the webhooks config", **documented(WebhookConfig))
async def get_webhooks_config(request: Request) -> dict[str, Any]:
    return _config(await _store(request).global_config())


@config_router.put(
    "", summary="Update the webhooks config", **documented(WebhookConfig, errors=(400,))
)
async def put_webhooks_config(body: WebhooksConfigBody, request: Request) -> dict[str, Any]:
    await _public_only(request, body.url)
    store = _store(request)
    current = await store.global_config()
    updated = GlobalWebhook(enabled=body.enabled, url=body.url or current.url)
    if updated.enabled and not updated.url:
        raise ApiError.invalid("url", "URL is required when webhooks are enabled")
    await store.put_global_config(updated)
    return _config(updated)


@config_router.post(
    "/test", summary="Send a signed test event to a URL", **documented(Message, errors=(400,))
)
async def test_webhook_url(body: TestUrlBody, request: Request) -> dict[str, Any]:
    await _send_test(request, body.url)
    return {"message": "Webhook URL is valid"}


@config_router.get(
    "/deliveries",
    summary="The global webhook's delivery log (meetplane)",
    **documented(DeliveryList),
)
async def global_deliveries(request: Request, maxItems: MaxItems = 20) -> dict[str, Any]:
    records = await _store(request).deliveries(GLOBAL, maxItems)
    return {"deliveries": [_delivery(r) for r in records]}


async def _one_delivery(request: Request, subscriber: str, delivery_id: str) -> Delivery:
    record = await _store(request).delivery(subscriber, delivery_id)
    if record is None:
        raise ApiError(404, "Webhook Error", f"Delivery '{delivery_id}' does not exist")
    return record


@config_router.get(
    "/deliveries/{deliveryId}",
    summary="One delivery (meetplane)",
    **documented(DeliveryBody, errors=(404,)),
)
async def global_delivery(deliveryId: DeliveryIdPath, request: Request) -> dict[str, Any]:
    return _delivery(await _one_delivery(request, GLOBAL, deliveryId))


@config_router.post(
    "/deliveries/{deliveryId}/resend",
    summary="Send a delivery again (meetplane)",
    **documented(DeliveryBody, errors=(404, 409)),
)
async def global_resend(deliveryId: DeliveryIdPath, request: Request) -> dict[str, Any]:
    config = await _store(request).global_config()
    if not config.url:
        raise ApiError(409, "Webhook Error", "No webhook URL is configured")
    record = await _dispatcher(request).resend(GLOBAL, deliveryId, config.url)
    if record is None:
        await _one_delivery(request, GLOBAL, deliveryId)  # raises 404
    assert record is not None
    return _delivery(record)


# ---- 3.9 webhook resources ----------------------------------------------------------------


def _webhook(webhook: Webhook) -> dict[str, Any]:
    return webhook.model_dump(exclude_none=True)


async def _existing(request: Request, webhook_id: str) -> Webhook:
    webhook = await _store(request).webhook(webhook_id)
    if webhook is None:
        raise ApiError(404, "Webhook Error", f"Webhook '{webhook_id}' does not exist")
    return webhook


@router.post("", summary="Create a webhook", **documented(WebhookBody, 201, errors=(400, 409)))
async def create_webhook(
    body: WebhookOptions, request: Request, response: Response
) -> dict[str, Any]:
    await _public_only(request, body.url)
    store = _store(request)
    if len(await store.webhooks()) >= MAX_WEBHOOKS:
        raise ApiError(
            409,
            "Webhook Error",
            f"The maximum number of registered webhooks ({MAX_WEBHOOKS}) has been reached",
        )
    webhook = Webhook(
        webhookId=new_webhook_id(), creationDate=int(time.time() * 1000), **body.model_dump()
    )
    # The consumer exists before the answer: every event after it is delivered.
    await _dispatcher(request).ensure_consumer(webhook.webhookId)
    await store.put_webhook(webhook)
    base = request.app.state.settings.base_url()
    response.headers["Location"] = f"{base}{PUBLIC_API}/webhooks/{webhook.webhookId}"
    return _webhook(webhook)


@router.get("", summary="List the webhooks", **documented(WebhookList))
async def list_webhooks(request: Request) -> dict[str, Any]:
    return {"webhooks": [_webhook(w) for w in await _store(request).webhooks()]}


@router.get("/{webhookId}", summary="Get a webhook", **documented(WebhookBody, errors=(404,)))
async def get_webhook(webhookId: WebhookIdPath, request: Request) -> dict[str, Any]:
    return _webhook(await _existing(request, webhookId))


@router.put(
    "/{webhookId}",
    summary="Replace a webhook's definition",
    **documented(WebhookBody, errors=(400, 404)),
)
async def update_webhook(
    webhookId: WebhookIdPath, body: WebhookOptions, request: Request
) -> dict[str, Any]:
    current = await _existing(request, webhookId)
    await _public_only(request, body.url)
    webhook = Webhook(webhookId=webhookId, creationDate=current.creationDate, **body.model_dump())
    await _store(request).put_webhook(webhook)
    return _webhook(webhook)


@router.delete("/{webhookId}", summary="Delete a webhook", **documented(Message, errors=(404,)))
async def delete_webhook(webhookId: WebhookIdPath, request: Request) -> dict[str, Any]:
    await _existing(request, webhookId)
    await _store(request).delete_webhook(webhookId)
    await _dispatcher(request).drop_consumer(webhookId)
    return {"message": f"Webhook '{webhookId}' deleted successfully"}


@router.post(
    "/{webhookId}/test",
    summary="Send a test event to a webhook",
    **documented(Message, errors=(400, 404)),
)
async def test_webhook(webhookId: WebhookIdPath, request: Request) -> dict[str, Any]:
    webhook = await _existing(request, webhookId)
    await _send_test(request, webhook.url)
    return {"message": f"Test event sent to webhook '{webhookId}'"}


@router.get(
    "/{webhookId}/deliveries",
    summary="A webhook's delivery log (meetplane)",
    **documented(DeliveryList, errors=(404,)),
)
async def webhook_deliveries(
    webhookId: WebhookIdPath, request: Request, maxItems: MaxItems = 20
) -> dict[str, Any]:
    await _existing(request, webhookId)
    records = await _store(request).deliveries(webhookId, maxItems)
    return {"deliveries": [_delivery(r) for r in records]}


@router.get(
    "/{webhookId}/deliveries/{deliveryId}",
    summary="One delivery (meetplane)",
    **documented(DeliveryBody, errors=(404,)),
)
async def webhook_delivery(
    webhookId: WebhookIdPath, deliveryId: DeliveryIdPath, request: Request
) -> dict[str, Any]:
    await _existing(request, webhookId)
    return _delivery(await _one_delivery(request, webhookId, deliveryId))


@router.post(
    "/{webhookId}/deliveries/{deliveryId}/resend",
    summary="Send a delivery again (meetplane)",
    **documented(DeliveryBody, errors=(404, 409)),
)
async def webhook_resend(
    webhookId: WebhookIdPath, deliveryId: DeliveryIdPath, request: Request
) -> dict[str, Any]:
    webhook = await _existing(request, webhookId)
    record = await _dispatcher(request).resend(webhookId, deliveryId, webhook.url)
    if record is None:
        await _one_delivery(request, webhookId, deliveryId)  # raises 404
    assert record is not None
    return _delivery(record)
