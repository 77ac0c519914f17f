"""FastAPI factory of the gateway; nothing is built at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.gateway.api import mount_api
from services.gateway.auth import Authenticator
from services.gateway.errors import install_error_handlers
from services.gateway.middleware import GatewayMiddleware
from services.gateway.policy import AuthorizeDep, check_policies
from services.gateway.ratelimits import RateLimits
from services.gateway.revocations import RevocationFollower
from services.gateway.routes import (
    api_keys,
    auth,
    livekit,
    meetings,
    members,
    ops,
    recordings,
    rooms,
    users,
    webhooks,
)
from services.gateway.rpc import Rpc
from services.gateway.settings import GatewaySettings
from services.gateway.tokens import TokenService, load_signing_key
from services.gateway.web.routes import mount_web
from services.gateway.webhooks.delivery import Dispatcher, Sender
from services.gateway.webhooks.payloads import PayloadBuilder
from services.gateway.webhooks.ssrf import AddressPolicy, parse_networks
from services.gateway.webhooks.store import WebhookStore
from services.runtime.kv_limits import NatsKVStorage, rate_limit_bucket
from services.runtime.logging import get_logger
from services.runtime.nats import make_broker, start_broker
from services.runtime.retry import Patience, retry_async
from services.runtime.telemetry import instrument_fastapi

# Routers without a base path; `mount_api` puts them under OpenVidu's prefixes.
PUBLIC_ROUTERS = [
    users.router,
    members.router,
    rooms.router,
    meetings.join_router,
    meetings.router,
    recordings.router,
    livekit.router,
    webhooks.router,
]
INTERNAL_ROUTERS = [
    auth.router,
    api_keys.router,
    users.me_router,
    members.token_router,
    webhooks.config_router,
    meetings.internal_router,
]
ROOT_ROUTERS = [ops.router]


log = get_logger("meetplane.gateway")

# Start-up steps against JetStream: transient errors for up to two minutes, others once.
STARTUP_PATIENCE = Patience(attempts=1, transient_seconds=120.0, initial_delay=0.2, max_delay=5.0)


def _retrying(error: BaseException, attempt: int, delay: float) -> None:
    log.warning("gateway.start_retry", error=repr(error), attempt=attempt, retry_in=delay)


def create_app(settings: GatewaySettings) -> FastAPI:
    """Build the gateway app; its lifespan connects to NATS."""
    tokens = TokenService(
        load_signing_key(settings.auth_signing_key, settings.data_dir),
        settings.auth_previous_signing_key,
        access_ttl=settings.access_token_ttl_seconds,
        member_ttl=settings.token_ttl_seconds,
        livekit=(settings.livekit_api_key, settings.livekit_api_secret),
    )
    revocations = RevocationFollower(settings.stream_name)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        broker = make_broker(settings, "meetplane-gateway")
        await start_broker(broker, stream=settings.stream_name)
        connection = broker._connection
        assert connection is not None
        # JetStream may still be electing leaders (a NATS node restarting): each step
        # is retried while its errors are transient, instead of failing the start.
        await retry_async(lambda: revocations.start(connection), STARTUP_PATIENCE, _retrying)
        bucket = await retry_async(lambda: rate_limit_bucket(connection), STARTUP_PATIENCE)
        limits = app.state.rate_limits = RateLimits(
            NatsKVStorage(bucket),
            enabled=settings.rate_limits_enabled,
            login_per_user=settings.login_failures_per_user,
            login_per_address=settings.login_failures_per_address,
            join_per_address=settings.join_failures_per_address,
            join_per_room=settings.join_failures_per_room,
            credentials_per_address=settings.credential_failures_per_address,
            requests_per_api_key=settings.requests_per_api_key,
        )
        rpc = Rpc(broker, settings.command_timeout)
        store = WebhookStore(connection, settings.stream_replicas)
        sender = Sender(
            settings.api_key, AddressPolicy(parse_networks(settings.webhook_allowed_networks))
        )
        dispatcher = Dispatcher(
            connection,
            store,
            PayloadBuilder(store, rpc, settings.base_url()),
            sender,
            settings.stream_name,
            settings.webhook_max_attempts,
        )
        await retry_async(dispatcher.start, STARTUP_PATIENCE, _retrying)
        app.state.broker = broker
        app.state.rpc = rpc
        app.state.webhook_store = store
        app.state.webhook_sender = sender
        app.state.webhook_dispatcher = dispatcher
        try:
            yield
        finally:
            await dispatcher.stop()
            await limits.close()
            await revocations.stop()
            await broker.stop()
            await sender.close()

    app = FastAPI(
        title="meetplane",
        version="0.1.0",
        description="Event-sourced control plane for video meetings "
        "(OpenVidu Meet REST API v1 compatible).",
        lifespan=lifespan,
        dependencies=[AuthorizeDep],
        docs_url=None,  # served by services.gateway.web.docs from vendored files
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.tokens = tokens
    app.state.revocations = revocations
    app.state.authenticator = Authenticator(tokens, revocations, settings.api_key)
    install_error_handlers(app)
    mount_api(app, PUBLIC_ROUTERS, INTERNAL_ROUTERS, ROOT_ROUTERS)
    mount_web(app)
    check_policies(app)
    app.add_middleware(GatewayMiddleware, max_body_bytes=settings.max_body_bytes)
    instrument_fastapi(app)  # outermost: the request's server span starts the trace
    return app
