"""`meetplane serve gateway`: the FastAPI app under uvicorn."""

from __future__ import annotations

import uvicorn

from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings
from services.runtime.heap import freeze_startup_heap
from services.runtime.logging import configure_logging


def serve() -> None:
    """Run the gateway until SIGINT/SIGTERM."""
    settings = GatewaySettings()
    configure_logging(settings.log_format, settings.log_level, "gateway")
    app = create_app(settings)
    freeze_startup_heap()
    uvicorn.run(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        access_log=False,
        server_header=False,
        forwarded_allow_ips=settings.forwarded_allow_ips,  # no "server: uvicorn" banner
        timeout_graceful_shutdown=1,  # `up` stops everything within 5 s; SSE streams end here
    )
