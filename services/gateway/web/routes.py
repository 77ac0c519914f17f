"""Mount the pages and their static files on the gateway app."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.gateway.policy import api_of
from services.gateway.web import console, docs, participant
from services.gateway.web.pages import (
    STATIC_DIR,
    STATIC_PATH,
    error_page,
    nonce_of,
    secure_headers,
)

ROUTERS = [participant.router, participant.xhr_router, console.router, docs.router]


def mount_web(app: FastAPI) -> None:
    """The participant pages, the console, `/docs` and `/assets` (vendored files)."""
    for router in ROUTERS:
        app.include_router(router)
    app.mount(STATIC_PATH, StaticFiles(directory=STATIC_DIR), name="assets")
    _html_errors_for_browsers(app)


def _html_errors_for_browsers(app: FastAPI) -> None:
    """A browser asking for a page that does not exist gets an HTML page, not JSON.

    The API keeps its JSON errors: only paths outside the API prefixes, asked for by a
    client that accepts HTML, are answered with the pages' error page.
    """
    api_handler: Any = app.exception_handlers[StarletteHTTPException]

    async def handler(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        api, _ = api_of(request.url.path)
        browser = "text/html" in request.headers.get("accept", "")
        if api != "root" or not browser or request.url.path.startswith(STATIC_PATH):
            response: Response = await api_handler(request, exc)
            return response
        message = {
            404: "There is no page at this address.",
            405: "This page cannot be used this way.",
        }.get(exc.status_code, str(exc.detail))
        page = error_page(request, exc.status_code, message)
        return secure_headers(page, nonce_of(request))

    app.add_exception_handler(StarletteHTTPException, handler)
