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

from fastapi import APIRouter, FastAPI, routing
from starlette.routing import Match, get_route_path
from starlette.types import Scope

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
    guard_prefixes(app)


# FastAPI keeps each `include_router` as one entry that matches a request by trying
# every route it holds, prefix or not: a request to the last of the 18 included API
# routers tried about 190 path patterns, twice (to pick the entry, then the route).
_Included: Any = getattr(routing, "_IncludedRouter", None)

if _Included is not None:

    class _PrefixGuarded(_Included):
        """An included router that first checks its prefix (one string test)."""

        def matches(self, scope: Scope) -> tuple[Match, Scope]:
            prefix = self.include_context.prefix
            path = get_route_path(scope)
            if path != prefix and not path.startswith(prefix + "/"):
                return Match.NONE, {}
            result: tuple[Match, Scope] = super().matches(scope)
            return result


def guard_prefixes(app: FastAPI) -> int:
    """Let every included router with a prefix skip requests outside it; returns how many.

    Matching is unchanged (a route under a prefix cannot match a path outside
    it); only the work of finding out is.  With a FastAPI that includes routers
    differently this does nothing (0) and routing stays FastAPI's own.
    """
    guarded = 0
    if _Included is None:
        return guarded
    for route in app.router.routes:
        if type(route) is _Included and getattr(route, "include_context").prefix:  # noqa: B009
            route.__class__ = _PrefixGuarded
            guarded += 1
    return guarded
