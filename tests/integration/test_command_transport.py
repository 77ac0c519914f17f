"""Commands over a real nats-server: deadlines, transport failures, and what the gateway retries.

A small "probe" service registers real command handlers through the runtime's
`CommandRouter`; the tests talk to it with the gateway's `Rpc` and with a raw
nats-py client (to reproduce nats-py's buffering of requests while disconnected).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import nats
import pytest
from faststream.nats import NatsBroker
from pydantic import BaseModel

from contracts.commands import DEADLINE_HEADER, ErrorCode, command_subject
from services.gateway.errors import ApiError
from services.gateway.rpc import Rpc
from services.runtime.commands import CommandRouter
from services.runtime.nats import make_broker
from services.runtime.rpc import TransportFailure, deadline_header, send
from services.runtime.service import RunningService, ServiceParts
from services.runtime.settings import RuntimeSettings
from tests.support.infra import NatsHandle
from tests.support.services import wait_for


class Key(BaseModel):
    key: str


class MediaDown(Exception):
    """A domain error whose code merely ends in `_unavailable`."""

    error = "media_backend_unavailable"


class Probe:
    """Counts what it ran, by key."""

    def __init__(self) -> None:
        self.ran: Counter[str] = Counter()
        self.storage = True

    async def storage_up(self) -> bool:
        return self.storage

    async def count(self, request: Key) -> dict[str, Any]:
        self.ran[request.key] += 1
        return {"key": request.key}

    async def media(self, request: Key) -> None:
        self.ran[request.key] += 1
        raise MediaDown("the media server failed")

    async def store(self, request: Key) -> None:
        self.ran[request.key] += 1
        raise ConnectionRefusedError("connection refused")  # what a client library raises

    async def slow_once(self, request: Key) -> dict[str, Any]:
        self.ran[request.key] += 1
        if self.ran[request.key] == 1:
            await asyncio.sleep(1.5)  # longer than the caller's timeout
        return {"key": request.key}


@pytest.fixture
async def probe(nats_binary: NatsHandle) -> AsyncIterator[Probe]:
    settings = RuntimeSettings(nats_url=nats_binary.url)
    broker = make_broker(settings, "probe")
    probe = Probe()
    router = CommandRouter(broker, "probe", {MediaDown: ErrorCode.UNAVAILABLE})
    router.register("count", Key, probe.count)
    router.register("media", Key, probe.media)
    router.register("slow_once", Key, probe.slow_once)
    router.register("store", Key, probe.store)
    parts = ServiceParts(name="probe", broker=broker, router=router, uses_stream=False)
    parts.checks["storage"] = probe.storage_up
    service = RunningService(parts, settings)
    await service.start()
    yield probe
    await service.stop()


@pytest.fixture
async def caller(nats_binary: NatsHandle) -> AsyncIterator[NatsBroker]:
    broker = make_broker(RuntimeSettings(nats_url=nats_binary.url), "caller")
    await broker.connect()
    yield broker
    await broker.stop()


async def test_a_command_past_its_deadline_is_refused_unrun(
    probe: Probe, nats_binary: NatsHandle
) -> None:
    nc = await nats.connect(nats_binary.url)
    try:
        subject = command_subject("probe", "count")
        past = {DEADLINE_HEADER: str(int(time.time() * 1000) - 1)}
        late = await nc.request(subject, b'{"key": "late"}', timeout=2, headers=past)
        assert json.loads(late.data)["error"]["error"] == "deadline_exceeded"
        fresh = await nc.request(
            subject, b'{"key": "fresh"}', timeout=2, headers=deadline_header(2)
        )
        assert json.loads(fresh.data)["ok"] is True
    finally:
        await nc.close()
    assert probe.ran == Counter({"fresh": 1})


async def test_a_request_nats_buffered_while_disconnected_is_not_run_after_its_deadline(
    probe: Probe, nats_binary: NatsHandle
) -> None:
    """nats-py keeps what is published while disconnected and sends it on reconnect."""
    # Reconnects later than the probe's broker (1 s), so the probe listens again when
    # this client flushes what it buffered.
    nc = await nats.connect(nats_binary.url, reconnect_time_wait=3, max_reconnect_attempts=-1)
    try:
        nats_binary.kill()
        await wait_for(lambda: not nc.is_connected)
        replies = await nc.subscribe("test.replies.>")
        subject = command_subject("probe", "count")
        expired = deadline_header(0.3)
        await nc.publish(subject, b'{"key": "gave-up"}', reply="test.replies.1", headers=expired)
        # Without a deadline the same buffered request does run: the case is real.
        await nc.publish(subject, b'{"key": "no-deadline"}', reply="test.replies.2")
        deadline_ms = int(expired[DEADLINE_HEADER])
        await wait_for(lambda: time.time() * 1000 > deadline_ms)
        nats_binary.start()
        answers = {}
        while len(answers) < 2:
            message = await replies.next_msg(timeout=20)
            answers[message.subject] = json.loads(message.data)
    finally:
        await nc.close()
    assert answers["test.replies.1"]["error"]["error"] == "deadline_exceeded"
    assert answers["test.replies.2"]["ok"] is True
    assert probe.ran == Counter({"no-deadline": 1})


async def test_send_refuses_to_publish_while_nats_is_down(
    probe: Probe, caller: NatsBroker, nats_binary: NatsHandle
) -> None:
    nats_binary.kill()
    await wait_for(lambda: not caller._connection.is_connected)  # type: ignore[union-attr]
    with pytest.raises(TransportFailure) as failure:
        await send(caller, "probe", "count", {"key": "while-down"}, timeout=1)
    assert failure.value.component == "nats" and not failure.value.delivered
    assert failure.value.error.error == "nats_unavailable"
    nats_binary.start()

    async def answered() -> bool:
        try:
            return (await send(caller, "probe", "count", {"key": "after"}, timeout=1)).ok
        except TransportFailure:
            return False

    await wait_for(answered, timeout=20, interval=0.2)
    assert probe.ran["while-down"] == 0


async def test_the_gateway_never_retries_an_answer_even_one_ending_in_unavailable(
    probe: Probe, caller: NatsBroker
) -> None:
    rpc = Rpc(caller, timeout=1.0, attempts=3)
    with pytest.raises(ApiError) as error:
        await rpc.retrying("probe", "media", {"key": "media"})
    assert (error.value.status, error.value.code) == (503, "media_backend_unavailable")
    assert probe.ran["media"] == 1


async def test_the_gateway_retries_a_timeout_only_when_repeating_is_safe(
    probe: Probe, caller: NatsBroker
) -> None:
    rpc = Rpc(caller, timeout=0.5, attempts=3)
    assert await rpc.retrying("probe", "slow_once", {"key": "safe"}) == {"key": "safe"}
    assert probe.ran["safe"] == 2
    with pytest.raises(ApiError) as error:
        await rpc("probe", "slow_once", {"key": "unsafe"})
    assert (error.value.status, error.value.code) == (503, "probe_unavailable")
    assert "did not answer" in error.value.message
    assert probe.ran["unsafe"] == 1


async def test_any_other_nats_client_failure_is_a_transport_failure_not_a_500(
    caller: NatsBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A NATS client error nobody listed (here a slow consumer) maps to 503, not a 500."""
    from nats.errors import SlowConsumerError

    async def failing(*_: Any, **__: Any) -> Any:
        raise SlowConsumerError(subject="x", reply="", sid=1, sub=None)

    monkeypatch.setattr(caller._connection, "request", failing)
    rpc = Rpc(caller, timeout=1.0, attempts=2)
    with pytest.raises(ApiError) as error:
        await rpc("probe", "count", {"key": "x"})
    assert (error.value.status, error.value.code) == (503, "nats_unavailable")
    assert "NATS failed" in error.value.message


async def test_no_responders_names_the_missing_service(caller: NatsBroker) -> None:
    rpc = Rpc(caller, timeout=1.0, attempts=2)
    with pytest.raises(ApiError) as error:
        await rpc("ghost", "count", {"key": "x"})
    assert (error.value.status, error.value.code) == (503, "ghost_unavailable")
    assert "not running" in error.value.message


async def test_a_failure_while_a_dependency_is_down_names_it(
    probe: Probe, caller: NatsBroker
) -> None:
    pong = await send(caller, "probe", "ping", timeout=2)
    assert pong.result["checks"] == {"storage": True}
    unexplained = await send(caller, "probe", "store", {"key": "up"}, timeout=2)
    assert unexplained.error is not None and unexplained.error.error == "internal_error"
    probe.storage = False
    pong = await send(caller, "probe", "ping", timeout=2)
    assert pong.result["checks"] == {"storage": False}
    named = await send(caller, "probe", "store", {"key": "down"}, timeout=2)
    assert named.error is not None
    assert (named.error.kind, named.error.error) == ("unavailable", "storage_unavailable")
    assert "storage is unreachable" in named.error.message


async def test_a_command_runs_without_a_worker_thread_hop(
    probe: Probe, nats_binary: NatsHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Receiving, parsing and answering a command stays on the event loop.

    A sync step anywhere in faststream's handler chain (a `NatsMessage`
    parameter is one) is run by anyio in a worker thread: a hop per command.
    """
    import anyio.to_thread

    hops: list[Any] = []
    run_sync = anyio.to_thread.run_sync

    async def counting(func: Any, *args: Any, **kwargs: Any) -> Any:
        hops.append(func)
        return await run_sync(func, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counting)
    nc = await nats.connect(nats_binary.url)
    try:
        reply = await nc.request(
            command_subject("probe", "count"),
            b'{"key": "k"}',
            timeout=2,
            headers=deadline_header(2),
        )
    finally:
        await nc.close()
    assert json.loads(reply.data)["ok"] is True
    assert probe.ran == Counter({"k": 1})
    assert hops == [], f"worker-thread hops per command: {hops}"
