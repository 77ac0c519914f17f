"""The command router on a real nats-server: bounded concurrency, a clean stop, bad bodies.

The router subscribes with nats-py directly (faststream's per-message path cost
more CPU than the busiest commands); these pin what faststream's subscriber used
to give: commands run side by side up to a bound, a stop answers the commands
in progress before it returns, and a body that is not JSON gets a typed error.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import nats
from pydantic import BaseModel

from contracts.commands import command_subject
from services.runtime.commands import CommandRouter
from services.runtime.nats import make_broker
from services.runtime.rpc import deadline_header
from services.runtime.service import RunningService, ServiceParts
from services.runtime.settings import RuntimeSettings
from tests.support.infra import NatsHandle
from tests.support.services import wait_for


class Key(BaseModel):
    key: str


class Gate:
    """A handler that holds every command until the test opens it."""

    def __init__(self) -> None:
        self.opened = asyncio.Event()
        self.running = 0
        self.most = 0

    async def hold(self, request: Key) -> dict[str, Any]:
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await self.opened.wait()
        finally:
            self.running -= 1
        return {"key": request.key}


async def started(url: str, gate: Gate, concurrency: int) -> RunningService:
    settings = RuntimeSettings(nats_url=url)
    broker = make_broker(settings, "gated")
    router = CommandRouter(broker, "gated", {}, concurrency=concurrency)
    router.register("hold", Key, gate.hold)
    service = RunningService(
        ServiceParts("gated", broker, router=router, uses_stream=False), settings
    )
    await service.start()
    return service


async def ask(nc: nats.NATS, verb: str, body: bytes, timeout: float = 5) -> dict[str, Any]:
    reply = await nc.request(
        command_subject("gated", verb), body, timeout=timeout, headers=deadline_header(timeout)
    )
    return dict(json.loads(reply.data))


async def test_commands_run_side_by_side_up_to_the_bound(nats_binary: NatsHandle) -> None:
    gate = Gate()
    service = await started(nats_binary.url, gate, concurrency=3)
    nc = await nats.connect(nats_binary.url)
    try:
        asks = [
            asyncio.create_task(ask(nc, "hold", f'{{"key": "{i}"}}'.encode())) for i in range(5)
        ]
        await wait_for(lambda: gate.running == 3)
        assert not any(task.done() for task in asks)
        gate.opened.set()
        replies = await asyncio.gather(*asks)
    finally:
        await nc.close()
        await service.stop()
    assert sorted(r["result"]["key"] for r in replies) == ["0", "1", "2", "3", "4"]
    assert gate.most == 3


async def test_a_stop_answers_the_commands_in_progress(nats_binary: NatsHandle) -> None:
    gate = Gate()
    service = await started(nats_binary.url, gate, concurrency=4)
    nc = await nats.connect(nats_binary.url)
    try:
        pending = asyncio.create_task(ask(nc, "hold", b'{"key": "in flight"}'))
        await wait_for(lambda: gate.running == 1)
        stopping = asyncio.create_task(service.stop(grace=5))

        async def unsubscribed() -> bool:
            try:
                await ask(nc, "ping", b"{}", timeout=1)
            except nats.errors.NoRespondersError:
                return True
            return False

        await wait_for(unsubscribed)  # nothing new is taken ...
        assert not stopping.done()  # ... and the stop waits for the command in progress
        gate.opened.set()
        reply = await pending
        await stopping
        assert reply == {"ok": True, "result": {"key": "in flight"}, "error": None}
    finally:
        await nc.close()


async def test_a_body_that_is_not_json_gets_a_typed_error(nats_binary: NatsHandle) -> None:
    gate = Gate()
    gate.opened.set()
    service = await started(nats_binary.url, gate, concurrency=2)
    nc = await nats.connect(nats_binary.url)
    try:
        garbled = await ask(nc, "hold", b"{not json")
        empty = await ask(nc, "hold", b"")
        fine = await ask(nc, "hold", b'{"key": "k"}')
    finally:
        await nc.close()
        await service.stop()
    assert garbled["ok"] is False and garbled["error"]["kind"] == "invalid"
    assert empty["ok"] is False and empty["error"]["details"][0]["field"] == "key"
    assert fine["ok"] is True
