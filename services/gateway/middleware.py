"""Request ids, structured access logs, body-size limits and request metrics."""

from __future__ import annotations

import time
import uuid

import structlog
from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.gateway.errors import error_body
from services.runtime.logging import get_logger

log = get_logger("meetplane.gateway.http")

REQUESTS = Counter("meetplane_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram("meetplane_http_request_seconds", "HTTP request latency", ["method", "route"])


class BodyTooLarge(Exception):
    """The request body exceeds the configured limit."""


class GatewayMiddleware:
    """Pure ASGI middleware: request id, body limit (413), access log, metrics."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        request_id = headers.get(b"x-request-id", b"").decode()[:64] or uuid.uuid4().hex
        with structlog.contextvars.bound_contextvars(request_id=request_id):
            # Restores the outer request's id after a page's in-process API call.
            await self._handle(scope, receive, send, headers, request_id)

    async def _handle(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: dict[bytes, bytes],
        request_id: str,
    ) -> None:
        started = time.perf_counter()
        status = 500

        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._reject_too_large(send, request_id)
            self._observe(scope, 413, started)
            return

        received = 0
        limit = self.max_body_bytes

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge
            return message

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_id)
        except BodyTooLarge:
            await self._reject_too_large(send, request_id)
            status = 413
        finally:
            self._observe(scope, status, started)

    async def _reject_too_large(self, send: Send, request_id: str) -> None:
        import json

        body = json.dumps(
            error_body("payload_too_large", f"request body exceeds {self.max_body_bytes} bytes")
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"x-request-id", request_id.encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def _observe(self, scope: Scope, status: int, started: float) -> None:
        route = scope.get("route")
        path = getattr(route, "path", None) or "unmatched"
        elapsed = time.perf_counter() - started
        REQUESTS.labels(scope["method"], path, str(status)).inc()
        LATENCY.labels(scope["method"], path).observe(elapsed)
        log.info(
            "http.request",
            method=scope["method"],
            path=scope["path"],
            status=status,
            ms=round(elapsed * 1000, 2),
        )
