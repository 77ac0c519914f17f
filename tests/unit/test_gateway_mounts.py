"""The API answers under OpenVidu Meet's base paths and under meetplane's `/api/v1` alias."""

from __future__ import annotations

import httpx
import pytest

from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings


@pytest.mark.parametrize("prefix", ["/meet/api/v1", "/api/v1"])
async def test_public_routes_answer_under_both_prefixes(prefix: str) -> None:
    app = create_app(GatewaySettings(api_key="k"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        # Authentication runs before any service is asked: both mounts reach the route.
        assert (await client.get(f"{prefix}/rooms")).status_code == 401
        assert (await client.get(f"{prefix}/no-such-resource")).status_code == 404


def test_openapi_documents_the_openvidu_prefix_only() -> None:
    schema = create_app(GatewaySettings(api_key="k")).openapi()
    assert "/meet/api/v1/rooms" in schema["paths"]
    assert not any(p.startswith("/api/v1") for p in schema["paths"])


def test_every_prefixed_router_skips_paths_outside_its_prefix() -> None:
    """The prefix guard is in place (a FastAPI upgrade that drops it shows here) and exact."""
    from starlette.routing import Match

    from services.gateway.api import guard_prefixes

    app = create_app(GatewaySettings(api_key="k"))
    assert guard_prefixes(app) == 0, "create_app guarded every prefixed router already"
    guarded = [r for r in app.router.routes if type(r).__name__ == "_PrefixGuarded"]
    assert len(guarded) >= 28  # 2 public prefixes x 8 routers + 2 internal x 6

    def matched(path: str, method: str = "GET") -> list[str]:
        scope = {"type": "http", "path": path, "method": method, "root_path": "", "headers": []}
        return [r.include_context.prefix for r in guarded if r.matches(scope)[0] != Match.NONE]

    assert set(matched("/api/v1/rooms")) == {"/api/v1"}
    assert set(matched("/meet/api/v1/rooms/r1", "DELETE")) == {"/meet/api/v1"}
    assert set(matched("/internal-api/v1/auth/login", "POST")) == {"/internal-api/v1"}
    assert matched("/api/v1x/rooms") == [] and matched("/healthz") == []
