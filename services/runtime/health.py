"""A small HTTP endpoint every service exposes: Kubernetes probes and Prometheus metrics.

`/healthz` answers while the process runs; `/readyz` only while its NATS
connection is up; `/metrics` is the process's Prometheus registry (consumers,
outbox, commands...).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator

import httpx
import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, Gauge, generate_latest

from services.runtime.logging import get_logger

READY = Gauge(
    "meetplane_service_ready",
    "1 while the service is ready (its NATS connection is up)",
    ["service"],
)

log = get_logger("meetplane.health")


def health_app(service: str, ready: Callable[[], bool]) -> FastAPI:
    """The probe app of one service."""
    app = FastAPI(title=f"meetplane {service} health", docs_url=None, redoc_url=None)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": service}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        ok = ready()
        return JSONResponse(
            {"status": "ready" if ok else "not_ready", "service": service},
            status_code=200 if ok else 503,
        )

    @app.get("/metrics")
    async def metrics() -> PlainTextResponse:
        READY.labels(service).set(1 if ready() else 0)
        # Some collectors read the store (outbox lag): off the event loop.
        text = await asyncio.to_thread(generate_latest)
        return PlainTextResponse(text.decode(), media_type=CONTENT_TYPE_LATEST)

    return app


async def http_reachable(url: str, timeout: float = 1.5) -> bool:
    """Whether anything answers HTTP at `url` (any status: the server is up).

    A readiness probe for a dependency such as S3, without credentials: an
    unauthenticated request gets 403 from a running server and a connection
    error from a stopped one.
    """
    try:
        async with httpx.AsyncClient(timeout=timeout) as client:
            await client.get(url)
    except httpx.HTTPError as exc:
        log.warning("health.dependency_unreachable", url=url, error=repr(exc))
        return False
    return True


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the service it runs in."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve_health(service: str, host: str, port: int, ready: Callable[[], bool]) -> None:
    """Serve the probe endpoints until cancelled."""
    config = uvicorn.Config(
        health_app(service, ready), host=host, port=port, log_level="warning", lifespan="off"
    )
    server = _QuietServer(config)
    try:
        await server.serve()
    except asyncio.CancelledError:
        server.should_exit = True
        raise
