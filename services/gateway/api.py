"""Where the API lives: OpenVidu Meet's base paths, plus meetplane's `/api/v1` alias.

OpenVidu Meet v3.8.0 clients look for the public API under `/meet/api/v1` and the
internal one under `/meet/internal-api/v1`.  meetplane's earlier clients use
`/api/v1`.  Each router is written once, without a base path, and mounted under
every prefix here: one implementation, several addresses.  Only the first
(OpenVidu) prefix appears in the OpenAPI document; the aliases answer the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, FastAPI

from services.gateway.schemas import ErrorBody

PUBLIC_API_PREFIXES = ("/meet/api/v1", "/api/v1")
INTERNAL_API_PREFIXES = ("/meet/internal-api/v1", "/internal-api/v1")
PUBLIC_API = PUBLIC_API_PREFIXES[0]
INTERNAL_API = INTERNAL_API_PREFIXES[0]

# Errors any API route can answer: credentials, validation, body size, limits, a service
# that did not answer.  Route-specific ones (404, 409...) are declared on the route.
COMMON_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in (
        (401, "Unauthorized: missing or invalid credentials"),
        (403, "Forbidden: the credentials do not allow this"),
        (413, "The request body is too large"),
        (422, "Invalid request: `details` names each field"),
        (429, "Too many requests"),
        (500, "Unexpected error"),
        (503, "A service did not answer in time"),
    )
}


def mount_api(
    app: FastAPI,
    public: Sequence[APIRouter],
    internal: Sequence[APIRouter] = (),
    root: Sequence[APIRouter] = (),
) -> None:
    """Include `public` under every public prefix, `internal` under every internal one.

    `root` routers (health, metrics, pages) are included as they are.
    """
    for prefixes, routers in ((PUBLIC_API_PREFIXES, public), (INTERNAL_API_PREFIXES, internal)):
        for index, prefix in enumerate(prefixes):
            for router in routers:
                app.include_router(
                    router, prefix=prefix, include_in_schema=index == 0, responses=COMMON_ERRORS
                )
    for router in root:
        app.include_router(router)
