"""Serve ASGI apps in-process on loopback for tests (the real uvicorn server)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn

from tests.support.infra import free_port
from tests.support.services import wait_for


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # leave signals to pytest
        yield


@asynccontextmanager
async def serve_app(app: Any, lifespan: str = "on", host: str = "127.0.0.1") -> AsyncIterator[str]:
    """Run `app` with uvicorn on a free port; yields its base URL."""
    port = free_port()
    server = _Server(
        uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan=lifespan)
    )
    task = asyncio.create_task(server.serve())

    def started() -> bool:
        if task.done():
            task.result()  # the server failed to start: raise its error
        return bool(server.started)

    await wait_for(started, interval=0.02)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        await task
