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


def test_vendored_files_match_their_recorded_sha256() -> None:
    import hashlib
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    vendor = root / "services" / "gateway" / "web" / "static" / "vendor"
    rows = [
        line.split()
        for line in (vendor / "VENDOR.txt").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert len(rows) >= 5
    for name, package, digest in rows:
        path = root / name if "/" in name else vendor / name
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, (name, package)
