"""The pages' way to act: the gateway's own API, called in-process with the caller's credential.

A page never sends a command itself: it calls the API route a REST client would, through
`httpx.ASGITransport` into the same app, so the route's policy row
(`services.gateway.policy`) authorizes it and its errors come back as `ApiError`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import httpx
from fastapi import Request, Response
from fastapi.responses import StreamingResponse
from starlette.types import Message
from structlog.contextvars import get_contextvars

from services.gateway.api import INTERNAL_API, PUBLIC_API
from services.gateway.errors import ApiError

__all__ = ["INTERNAL_API", "PUBLIC_API", "Api"]


def _message(body: dict[str, Any], fallback: str) -> str:
    """An API error in words: its message, with the fields a 422 names."""
    message = str(body.get("message", fallback))
    details = body.get("details") or []
    if details and isinstance(details, list):
        named = "; ".join(
            f"{d.get('field', 'input')}: {d.get('message', 'invalid')}"
            for d in details
            if isinstance(d, dict)
        )
        if named:
            return f"{message}: {named}" if message and message != named else named
    return message


class Api:
    """API calls on behalf of one page request, with one credential (or none)."""

    def __init__(self, request: Request, headers: dict[str, str] | None = None) -> None:
        self.request = request
        self.headers = headers or {}

    @classmethod
    def member(cls, request: Request, token: str) -> Api:
        """As the holder of a room member token."""
        return cls(request, {"X-Room-Member-Token": token})

    @classmethod
    def user(cls, request: Request, access_token: str) -> Api:
        """As a signed-in user."""
        return cls(request, {"Authorization": f"Bearer {access_token}"})

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """The route's JSON answer; an error status raises `ApiError` with its message."""
        client = self.request.client
        trace = {k: str(v) for k, v in get_contextvars().items() if k == "request_id"}
        transport = httpx.ASGITransport(
            app=self.request.app,
            client=(client.host, client.port) if client else ("127.0.0.1", 0),
        )
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
            response = await http.request(
                method,
                path,
                json=json,
                params={k: v for k, v in (params or {}).items() if v is not None},
                headers={
                    **({"X-Request-Id": trace["request_id"]} if trace else {}),
                    **self.headers,
                    **(headers or {}),
                },
            )
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code >= 400:
            raise ApiError(
                response.status_code,
                str(body.get("error", "error")),
                _message(body, response.reason_phrase),
                body.get("details") or [],
            )
        return body

    async def get(self, path: str, **params: Any) -> Any:
        """GET with query parameters."""
        return await self.call("GET", path, params=params)

    async def stream(
        self,
        path: str,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        keep: tuple[str, ...] = (
            "content-type",
            "content-length",
            "content-range",
            "content-disposition",
            "accept-ranges",
        ),
    ) -> Response:
        """A GET of the API passed on as it streams (media, ZIP): nothing is buffered.

        `httpx.ASGITransport` would read the whole body first; here the app runs as a
        task and each body chunk it sends is handed on.  An error status raises
        `ApiError` like `call`.
        """
        query = urlencode({k: v for k, v in (params or {}).items() if v is not None})
        sent: dict[str, str] = {**self.headers, **(headers or {})}
        client = self.request.client
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": query.encode(),
            "headers": [(k.lower().encode(), v.encode()) for k, v in sent.items()],
            "client": (client.host, client.port) if client else ("127.0.0.1", 0),
            "server": ("gateway", 80),
        }
        messages: asyncio.Queue[Message] = asyncio.Queue(maxsize=8)
        finished = asyncio.Event()
        requested = False

        async def receive() -> Message:
            nonlocal requested
            if not requested:
                requested = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await finished.wait()
            return {"type": "http.disconnect"}

        async def run() -> None:
            try:
                await self.request.app(scope, receive, messages.put)
            finally:
                await messages.put({"type": "meetplane.done"})

        task = asyncio.create_task(run())
        start = await messages.get()
        if start["type"] != "http.response.start":
            finished.set()
            await task
            raise ApiError(500, "internal_error", "the API gave no answer")
        status = int(start["status"])
        answer_headers = {k.decode().lower(): v.decode() for k, v in start.get("headers", [])}

        async def body() -> AsyncIterator[bytes]:
            try:
                while True:
                    message = await messages.get()
                    if message["type"] != "http.response.body":
                        return
                    if message.get("body"):
                        yield message["body"]
                    if not message.get("more_body"):
                        return
            finally:
                finished.set()
                if not task.done():
                    task.cancel()

        if status >= 400:
            raw = b"".join([chunk async for chunk in body()])
            try:
                error = httpx.Response(status, content=raw).json()
            except ValueError:
                error = {}
            raise ApiError(
                status,
                str(error.get("error", "error")),
                _message(error, "the API refused"),
                error.get("details") or [],
            )
        return StreamingResponse(
            body(),
            status_code=status,
            headers={k: v for k, v in answer_headers.items() if k in keep},
        )
