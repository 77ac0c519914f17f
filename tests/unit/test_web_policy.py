"""Every web page has exactly one row in the policy table, and every page row a page."""

from __future__ import annotations

from fastapi.routing import APIRoute

from services.gateway.policy import POLICIES
from services.gateway.web.routes import ROUTERS


def page_routes() -> set[tuple[str, str, str]]:
    return {
        ("root", method, route.path)
        for router in ROUTERS
        for route in router.routes
        if isinstance(route, APIRoute)
        for method in route.methods
    }


def test_every_page_has_a_page_row_and_back() -> None:
    rows = {key for key, policy in POLICIES.items() if policy.page}
    assert page_routes() == rows


def test_page_rows_say_that_the_api_decides() -> None:
    for key, policy in POLICIES.items():
        if policy.page:
            assert policy.describe().startswith("web page"), key
