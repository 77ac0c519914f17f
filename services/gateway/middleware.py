"""Request ids, security headers, structured access logs, body-size limits, request metrics."""

from __future__ import annotations

import re
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


_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,64}")


def _request_id(raw: bytes) -> str:
    """The caller's X-Request-Id when it is a short token, else a new one.

    Header values are bytes on the wire: anything else (non-UTF-8, control
    characters, a novel) would break logs and the echoed header.
    """
    if _REQUEST_ID.fullmatch(raw):
        return raw.decode("ascii")
    return uuid.uuid4().hex


# Every response: no MIME sniffing, no referrer (links carry secrets in their query),
# never inside a frame.  HTML pages get a policy allowing only the gateway's own
# scripts and styles; the API's JSON a policy allowing nothing.
COMMON_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
API_CSP = b"default-src 'none'; frame-ancestors 'none'"
PAGE_CSP = (
    b"default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    b"img-src 'self' data:; media-src 'self' blob:; connect-src 'self'; "
    b"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")
# Responses may carry secrets and tokens (links, member tokens, sign-ins): no cache keeps
# them unless the route chose its own caching (static assets, media).
NO_STORE = (b"cache-control", b"no-store")


def security_headers(scope: Scope, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """`headers` plus the security headers this response lacks."""
    present = {name.lower() for name, _ in headers}
    added = [h for h in COMMON_HEADERS if h[0] not in present]
    if b"content-security-policy" not in present:
        content_type = dict((k.lower(), v) for k, v in headers).get(b"content-type", b"")
        policy = PAGE_CSP if content_type.startswith(b"text/html") else API_CSP
        added.append((b"content-security-policy", policy))
    if b"cache-control" not in present:
        added.append(NO_STORE)
    if scope.get("scheme") == "https" and HSTS[0] not in present:
        added.append(HSTS)
    return [*headers, *added]


class GatewayMiddleware:
    """Pure ASGI middleware: request id, security headers, body limit (413), access log,
    metrics."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        request_id = _request_id(headers.get(b"x-request-id", b""))
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
            await self._reject_too_large(scope, send, request_id)
            self._observe(scope, 413, started)
            return

        received = 0
        limit = self.max_body_bytes
        rejected = False

        async def limited_receive() -> Message:
            # A body over the limit (chunked, so not declared) is answered 413 here;
            # the app is then told the client left, and whatever it answers to that
            # (FastAPI: 400 "error parsing the body") is dropped in `send_with_id`.
            nonlocal received, rejected, status
            if rejected:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    rejected, status = True, 413
                    await self._reject_too_large(scope, send, request_id)
                    return {"type": "http.disconnect"}
            return message

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if rejected:
                return
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = security_headers(
                    scope, [*message["headers"], (b"x-request-id", request_id.encode())]
                )
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_id)
        finally:
            self._observe(scope, status, started)

    async def _reject_too_large(self, scope: Scope, send: Send, request_id: str) -> None:
        import json

        body = json.dumps(
            error_body(
                "Payload Too Large",
                f"request body exceeds {self.max_body_bytes} bytes",
                code="payload_too_large",
            )
        ).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", request_id.encode()),
        ]
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": security_headers(scope, headers),
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
