"""FastAPI factory of the gateway; nothing is built at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI

from services.gateway.api import mount_api
from services.gateway.errors import install_error_handlers
from services.gateway.middleware import GatewayMiddleware
from services.gateway.routes import livekit, meetings, ops, recordings, rooms, webhooks
from services.gateway.rpc import Rpc
from services.gateway.settings import GatewaySettings
from services.gateway.webhooks import (
    WebhookConfigStore,
    WebhookSender,
    register_webhook_delivery,
)
from services.runtime.nats import make_broker, start_broker

# Routers without a base path; `mount_api` puts them under OpenVidu's prefixes.
PUBLIC_ROUTERS = [
    rooms.router,
    meetings.join_router,
    meetings.router,
    recordings.router,
    livekit.router,
    webhooks.router,
]
INTERNAL_ROUTERS: list[APIRouter] = []
ROOT_ROUTERS = [ops.router]


def create_app(settings: GatewaySettings) -> FastAPI:
    """Build the gateway app; its lifespan connects to NATS."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        broker = make_broker(settings, "meetplane-gateway")
        store = WebhookConfigStore(broker)
        sender = WebhookSender(settings.api_key)
        register_webhook_delivery(broker, store, sender, settings.stream_name)
        await start_broker(broker, stream=settings.stream_name)
        app.state.broker = broker
        app.state.rpc = Rpc(broker, settings.command_timeout)
        app.state.webhook_store = store
        app.state.webhook_sender = sender
        try:
            yield
        finally:
            await broker.stop()
            await sender.close()

    app = FastAPI(
        title="meetplane",
        version="0.1.0",
        description="Event-sourced control plane for video meetings "
        "(OpenVidu Meet REST API v1 compatible).",
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_error_handlers(app)
    mount_api(app, PUBLIC_ROUTERS, INTERNAL_ROUTERS, ROOT_ROUTERS)
    app.add_middleware(GatewayMiddleware, max_body_bytes=settings.max_body_bytes)
    return app
