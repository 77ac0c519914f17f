"""How services start and say they are ready: waiting for the stream instead of failing,
the gateway's own readiness apart from the platform's, the config bucket's replicas."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import nats

from contracts.streams import CONFIG_BUCKET
from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings
from services.rooms.main import build as build_rooms
from services.rooms.settings import RoomsSettings
from services.runtime.nats import connect, ensure_stream
from services.runtime.rpc import request
from services.runtime.service import RunningService
from services.runtime.settings import RuntimeSettings
from tests.support.cluster import once_elected
from tests.support.http import serve_app
from tests.support.infra import NatsHandle, nats_cluster
from tests.support.services import running


async def test_service_waits_for_the_stream_instead_of_failing(
    nats_server: NatsHandle, tmp_path: Path, client_broker: Any
) -> None:
    settings = RoomsSettings(nats_url=nats_server.url, data_dir=tmp_path / "data")
    service = RunningService(build_rooms(settings), settings)
    starting = asyncio.create_task(service.start())
    try:
        done, _ = await asyncio.wait({starting}, timeout=1.5)
        assert not done, f"start ended without a stream: {starting.exception()!r}"
        nc = await connect(RuntimeSettings(nats_url=nats_server.url), "test-declare")
        await ensure_stream(nc)
        await nc.close()
        await asyncio.wait_for(starting, 30)
        reply = await request(client_broker, "rooms", "ping", timeout=5)
        assert reply.ok
    finally:
        if not starting.done():
            starting.cancel()
        await service.stop()


async def test_gateway_is_ready_while_another_service_is_down(settings_factory: Any) -> None:
    """A stopped janitor must not take the gateways out of the load balancer."""
    async with AsyncExitStack() as stack:
        rooms = settings_factory(RoomsSettings)
        await stack.enter_async_context(running(build_rooms(rooms), rooms))
        gateway = settings_factory(GatewaySettings, api_key="k", ready_services="rooms,janitor")
        base = await stack.enter_async_context(serve_app(create_app(gateway)))
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            ready = await http.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert ready.json()["checks"] == {"nats": True}
            platform = await http.get("/readyz/platform")
            assert platform.status_code == 503
            assert platform.json()["checks"] == {"nats": True, "rooms": True, "janitor": False}


async def test_config_bucket_follows_the_stream_replicas(tmp_path: Path) -> None:
    servers = nats_cluster(tmp_path, 3)
    try:
        url = ",".join(s.url for s in servers)
        nc = await nats.connect(servers=url.split(","))
        try:
            js = nc.jetstream()

            # A gateway of an earlier release made the bucket with one replica.
            await once_elected(
                lambda: js.create_key_value(bucket=CONFIG_BUCKET, history=5, replicas=1)
            )
            assert (await js.stream_info(f"KV_{CONFIG_BUCKET}")).config.num_replicas == 1
            await once_elected(lambda: ensure_stream(nc, replicas=3))
            info = await js.stream_info(f"KV_{CONFIG_BUCKET}")
            assert info.config.num_replicas == 3
            assert (await js.stream_info("MEETPLANE")).config.num_replicas == 3
        finally:
            await nc.close()
    finally:
        for server in servers:
            server.stop()
