"""Mount the pages and their static files on the gateway app."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from services.gateway.web import console, docs, participant
from services.gateway.web.pages import STATIC_DIR, STATIC_PATH

ROUTERS = [participant.router, console.router, docs.router]


def mount_web(app: FastAPI) -> None:
    """The participant pages, the console, `/docs` and `/assets` (vendored files)."""
    for router in ROUTERS:
        app.include_router(router)
    app.mount(STATIC_PATH, StaticFiles(directory=STATIC_DIR), name="assets")
