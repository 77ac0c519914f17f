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
