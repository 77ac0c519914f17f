"""Security headers on every gateway response: API, pages, docs, errors; no server banner."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from services.gateway.app import create_app
from services.gateway.middleware import GatewayMiddleware
from services.gateway.settings import GatewaySettings


def gateway(tmp_path: Path) -> Any:
    return create_app(GatewaySettings(api_key="k", data_dir=tmp_path))


async def get(app: Any, path: str, base: str = "http://gw", **kwargs: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=base) as client:
        return await client.get(path, **kwargs)


def assert_common(response: httpx.Response) -> None:
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


@pytest.mark.parametrize("path", ["/healthz", "/api/v1/rooms", "/meet/api/v1/nothing-here"])
async def test_api_responses_and_errors_carry_the_headers_and_no_store(
    tmp_path: Path, path: str
) -> None:
    response = await get(gateway(tmp_path), path)
    assert_common(response)
    assert (
        response.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    )
    assert response.headers["cache-control"] == "no-store"
    assert "strict-transport-security" not in response.headers  # plain HTTP: no HSTS


async def test_hsts_only_over_tls(tmp_path: Path) -> None:
    response = await get(gateway(tmp_path), "/healthz", base="https://gw")
    assert response.headers["strict-transport-security"].startswith("max-age=31536000")


async def test_the_docs_page_gets_its_own_policy(tmp_path: Path) -> None:
    response = await get(gateway(tmp_path), "/docs")
    assert_common(response)
    policy = response.headers["content-security-policy"]
    # Swagger UI is vendored: its own policy names no other origin, and its one
    # inline script runs by nonce, not by 'unsafe-inline'.
    assert "https://" not in policy and "'unsafe-inline'" not in policy.split("style-src")[0]
    assert "'nonce-" in policy


async def test_html_pages_get_a_self_only_script_policy() -> None:
    async def page(_: Any) -> Response:
        return HTMLResponse("<p>hello</p>")

    async def cached(_: Any) -> Response:
        return Response("x", headers={"cache-control": "public, max-age=3600"})

    app = GatewayMiddleware(
        Starlette(routes=[Route("/page", page), Route("/static/x.css", cached)]), 1000
    )
    response = await get(app, "/page")
    assert_common(response)
    policy = response.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "unsafe-inline" not in policy.split("style-src")[0]
    # A route that chose its own caching keeps it.
    assert (await get(app, "/static/x.css")).headers["cache-control"] == "public, max-age=3600"


def test_the_gateway_sends_no_server_banner(monkeypatch: pytest.MonkeyPatch) -> None:
    import services.gateway.main as main

    seen: dict[str, Any] = {}
    monkeypatch.setattr(main.uvicorn, "run", lambda app, **kw: seen.update(kw))
    monkeypatch.setattr(main, "create_app", lambda settings: None)
    main.serve()
    assert seen["server_header"] is False
