"""Admin authentication: `X-API-KEY`, compared in constant time."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader

from services.gateway.errors import ApiError

api_key_header = APIKeyHeader(name="X-API-KEY", auto_error=False, description="admin API key")


async def require_api_key(
    request: Request, key: Annotated[str | None, Depends(api_key_header)]
) -> None:
    """401 unless the request carries the configured admin key."""
    expected: str = request.app.state.settings.api_key
    if not key or not expected or not hmac.compare_digest(key.encode(), expected.encode()):
        raise ApiError(
            401,
            "unauthorized",
            "a valid X-API-KEY header is required",
            headers={"WWW-Authenticate": "API-Key"},
        )


AdminDep = Depends(require_api_key)
