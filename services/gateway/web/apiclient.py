"""The pages' way to act: the gateway's own API, called in-process with the caller's credential.

A page never sends a command itself: it calls the API route a REST client would, through
`httpx.ASGITransport` into the same app, so the route's policy row
(`services.gateway.policy`) authorizes it and its errors come back as `ApiError`.
"""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import Request
from structlog.contextvars import get_contextvars

from services.gateway.api import INTERNAL_API, PUBLIC_API
from services.gateway.errors import ApiError

__all__ = ["INTERNAL_API", "PUBLIC_API", "Api"]


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
                str(body.get("message", response.reason_phrase)),
                body.get("details") or [],
            )
        return body

    async def get(self, path: str, **params: Any) -> Any:
        """GET with query parameters."""
        return await self.call("GET", path, params=params)
