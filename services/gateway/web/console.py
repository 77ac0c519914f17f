"""The admin console (placeholder, filled below)."""

from __future__ import annotations

from fastapi import APIRouter

from services.gateway.web.pages import PageRoute

router = APIRouter(route_class=PageRoute, include_in_schema=False)
