"""Baseline for bench/rooms.py: a bare FastAPI endpoint doing one NATS request/reply.

Run as two processes (`responder` and `api`) so the path matches the gateway's:
HTTP → FastAPI → NATS request → another process → reply.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI
from faststream.nats import NatsBroker

SUBJECT = "bench.echo"


async def responder(url: str) -> None:
    """Answer every request on `bench.echo` with its body."""
    broker = NatsBroker(url)

    @broker.subscriber(SUBJECT, queue="bench")
    async def echo(body: Any) -> Any:
        return body

    await broker.start()
    await asyncio.Event().wait()


def api(url: str, port: int) -> None:
    """The bare endpoint."""
    broker = NatsBroker(url)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await broker.connect()
        yield
        await broker.stop()

    app = FastAPI(lifespan=lifespan)

    @app.post("/echo")
    async def echo(body: dict[str, Any]) -> Any:
        reply = await broker.request(body, SUBJECT, timeout=5)
        return await reply.decode()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    if sys.argv[1] == "responder":
        asyncio.run(responder(sys.argv[2]))
    else:
        api(sys.argv[2], int(sys.argv[3]))
