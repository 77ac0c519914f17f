"""Operations: health, readiness, metrics, AsyncAPI."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.gateway.schemas import AsyncApiDocument, Health, Readiness, documented
from services.runtime.rpc import request as nats_request
from services.runtime.service import broker_connected

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness", **documented(Health))
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness of this gateway: its NATS connection is up",
    **documented(Readiness, 200, (503, Readiness)),
)
async def readyz(request: Request) -> JSONResponse:
    """Whether THIS gateway can serve: a load balancer's question.

    A slow or stopped service (say, the janitor) must not take every gateway out of
    rotation: requests for that service get their own 503, the rest are served.
    The whole platform's state is `/readyz/platform`.
    """
    ready = broker_connected(request.app.state.broker)
    return JSONResponse(
        {
            "status": "ready" if ready else "not_ready",
            "checks": {"nats": ready},
            "down": [] if ready else ["nats"],
        },
        status_code=200 if ready else 503,
    )


@router.get(
    "/readyz/platform",
    summary="Readiness of the platform: NATS, every service and their dependencies answer",
    **documented(Readiness, 200, (503, Readiness)),
)
async def platform_ready(request: Request) -> JSONResponse:
    """Every service in `MEETPLANE_READY_SERVICES` answers (what `meetplane up` waits for).

    503 names what is down (`down`: `nats`, a service, a service's dependency such as
    `storage`).
    """
    broker = request.app.state.broker
    settings = request.app.state.settings
    services = settings.readiness_services()
    checks: dict[str, Any] = {"nats": broker_connected(broker)}
    if checks["nats"]:
        replies = await asyncio.gather(
            *(
                nats_request(broker, s, "ping", timeout=settings.ready_ping_timeout)
                for s in services
            )
        )
        for service, reply in zip(services, replies, strict=True):
            checks[service] = reply.ok
            if reply.ok:
                # A service's own dependencies (e.g. the recordings service's S3).
                for name, ok in (reply.result or {}).get("checks", {}).items():
                    checks[name] = checks.get(name, True) and bool(ok)
    down = [name for name, ok in checks.items() if not ok]
    ready = not down and all(s in checks for s in services)
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", "checks": checks, "down": down},
        status_code=200 if ready else 503,
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=PlainTextResponse,
    responses={200: {"description": "Metrics", "content": {CONTENT_TYPE_LATEST: {}}}},
)
async def metrics() -> PlainTextResponse:
    return PlainTextResponse(generate_latest().decode(), media_type=CONTENT_TYPE_LATEST)


@router.get(
    "/asyncapi",
    summary="AsyncAPI document of the integration events",
    responses={200: {"model": AsyncApiDocument, "description": "AsyncAPI 3"}},
)
async def asyncapi() -> JSONResponse:
    from services.runtime.schemas import asyncapi_document

    return JSONResponse(asyncapi_document())
