"""Webhook URLs reach public addresses only: checked after DNS, at connect time, every time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from fastapi.responses import RedirectResponse

from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings
from services.gateway.webhooks.delivery import Sender
from services.gateway.webhooks.delivery import test_payload as sample_payload
from services.gateway.webhooks.ssrf import FORBIDDEN_REASON, AddressPolicy, parse_networks
from tests.support.http import serve_app
from tests.support.infra import free_port

API_KEY = "ssrf-key"


def receiver(hits: list[str], redirect_to: str | None = None) -> FastAPI:
    app = FastAPI()

    @app.post("/{path:path}")
    async def receive(path: str, request: Request) -> Response:
        hits.append(path)
        if redirect_to:
            return RedirectResponse(redirect_to, status_code=307)
        return Response(status_code=200)

    return app


@pytest.fixture
async def internal() -> AsyncIterator[tuple[str, list[str]]]:
    """A receiver on loopback: what an attacker would like the gateway to reach."""
    hits: list[str] = []
    async with serve_app(receiver(hits)) as base:
        yield base, hits


INTERNAL_TARGETS = [
    "http://{loopback}/",
    "http://localhost:{port}/",
    "http://[::1]:{port}/",
    "http://[::ffff:127.0.0.1]:{port}/",
    "http://0.0.0.0:{port}/",
    "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.7/",
    "http://172.16.3.4/",
    "http://192.168.1.1/",
    "http://100.64.0.1/",
]


@pytest.mark.parametrize("template", INTERNAL_TARGETS)
async def test_webhooks_never_reach_internal_addresses(
    internal: tuple[str, list[str]], template: str
) -> None:
    base, hits = internal
    url = template.format(loopback=base.removeprefix("http://"), port=base.rsplit(":", 1)[1])
    sender = Sender(API_KEY)
    try:
        assert await sender.forbidden(url)
        attempt = await sender.post(url, sample_payload(), None)
    finally:
        await sender.close()
    assert attempt.error == FORBIDDEN_REASON
    assert hits == []


async def test_an_open_and_a_closed_internal_port_look_the_same(
    internal: tuple[str, list[str]],
) -> None:
    base, _ = internal
    sender = Sender(API_KEY)
    try:
        open_port = await sender.post(f"{base}/", sample_payload(), None)
        closed_port = await sender.post(f"http://127.0.0.1:{free_port()}/", sample_payload(), None)
    finally:
        await sender.close()
    assert open_port.error == closed_port.error == FORBIDDEN_REASON


async def test_the_address_is_checked_when_connecting_not_only_when_configured(
    internal: tuple[str, list[str]],
) -> None:
    """DNS rebinding: public when the URL is saved, loopback when the event is sent."""
    base, hits = internal
    answers = [["93.184.216.34"], ["127.0.0.1"]]

    async def rebinding(host: str, port: int) -> list[str]:
        return answers.pop(0) if answers else ["127.0.0.1"]

    sender = Sender(API_KEY, resolve=rebinding)
    url = f"http://rebind.example:{base.rsplit(':', 1)[1]}/hook"
    try:
        assert not await sender.forbidden(url)  # the first answer was public
        attempt = await sender.post(url, sample_payload(), None)
    finally:
        await sender.close()
    assert attempt.error == FORBIDDEN_REASON
    assert hits == []


async def test_a_name_with_any_internal_address_is_refused() -> None:
    async def mixed(host: str, port: int) -> list[str]:
        return ["93.184.216.34", "10.0.0.1"]

    sender = Sender(API_KEY, resolve=mixed)
    try:
        assert await sender.forbidden("https://mixed.example/hook")
    finally:
        await sender.close()


async def test_a_redirect_to_loopback_is_not_followed(internal: tuple[str, list[str]]) -> None:
    target, target_hits = internal
    hits: list[str] = []
    # The receiver itself is allowed (on 127.0.0.2 only); it redirects to 127.0.0.1.
    async with serve_app(receiver(hits, f"{target}/stolen"), host="127.0.0.2") as allowed:
        sender = Sender(API_KEY, AddressPolicy(parse_networks("127.0.0.2/32")))
        try:
            attempt = await sender.post(f"{allowed}/hook", sample_payload(), None)
        finally:
            await sender.close()
    assert hits == ["hook"]  # the allow-list lets tests reach their own receiver
    assert attempt.statusCode == 307 and attempt.error
    assert target_hits == []


@pytest.fixture
async def gateway(settings_factory: Any) -> AsyncIterator[httpx.AsyncClient]:
    settings = settings_factory(GatewaySettings, api_key=API_KEY)
    async with (
        serve_app(create_app(settings)) as base,
        httpx.AsyncClient(base_url=base, headers={"X-API-KEY": API_KEY}, timeout=10) as client,
    ):
        yield client


async def test_the_gateway_refuses_internal_webhook_urls(
    gateway: httpx.AsyncClient, internal: tuple[str, list[str]]
) -> None:
    base, hits = internal
    config = "/meet/internal-api/v1/config/webhooks"
    refused = [
        await gateway.put(config, json={"enabled": True, "url": "http://169.254.169.254/"}),
        await gateway.post("/meet/api/v1/webhooks", json={"url": "http://10.1.2.3/hook"}),
        await gateway.post(f"{config}/test", json={"url": f"{base}/open"}),
        await gateway.post(f"{config}/test", json={"url": f"http://127.0.0.1:{free_port()}/"}),
    ]
    assert [r.status_code for r in refused] == [400, 400, 400, 400]
    # An open and a closed port answer the same: the test endpoint is no port scanner.
    assert (
        refused[2].json()["message"].split(": ", 1)[1]
        == refused[3].json()["message"].split(": ", 1)[1]
    )
    assert FORBIDDEN_REASON in refused[2].json()["message"]
    assert hits == []
    assert (await gateway.get(config)).json().get("url") is None
