"""Run services in-process against real infrastructure, and read the stream."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import nats
from nats.js.api import ConsumerConfig, DeliverPolicy

from services.runtime.service import RunningService, ServiceParts
from services.runtime.settings import RuntimeSettings

T = TypeVar("T")


@asynccontextmanager
async def running(parts: ServiceParts, settings: RuntimeSettings) -> AsyncIterator[RunningService]:
    """Start a built service; stop it on exit."""
    service = RunningService(parts, settings)
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


async def stream_events(
    url: str, subject: str = "meetplane.evt.>", idle: float = 0.5
) -> list[dict[str, Any]]:
    """Every event currently on the MEETPLANE stream for `subject`, oldest first."""
    nc = await nats.connect(servers=url.split(","))
    js = nc.jetstream()

    async def subscribed() -> Any:
        try:
            return await js.subscribe(
                subject,
                ordered_consumer=True,
                config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
            )
        except (TimeoutError, nats.errors.TimeoutError):
            return None  # a cluster that just lost or regained a node may time out

    try:
        sub = await wait_for(subscribed, timeout=60, interval=0.5)
    except TimeoutError:
        await nc.close()
        raise
    events: list[dict[str, Any]] = []
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=idle)
            except (TimeoutError, nats.errors.TimeoutError):
                break
            events.append(json.loads(msg.data))
    finally:
        await sub.unsubscribe()
        await nc.close()
    return events


async def wait_for(predicate: Any, timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll an async or sync predicate until it returns a truthy value."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"condition not met in {timeout}s")
        await asyncio.sleep(interval)


def wait_until(
    predicate: Callable[[], T],
    timeout: float = 10.0,
    interval: float = 0.1,
    *,
    ignore: tuple[type[BaseException], ...] = (),
    message: Callable[[], str] | str = "",
) -> T:
    """Poll a sync predicate until it returns a truthy value (the sync twin of `wait_for`).

    Exceptions of the `ignore` types count as "not yet"; any other exception propagates at once
    (so a predicate can fail fast, e.g. when the process it waits for has exited). On timeout,
    raises TimeoutError naming `message` and the last ignored exception.
    This is the one place a sync test helper sleeps: between polls.
    """
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except ignore as exc:
            last = exc
        if time.monotonic() > deadline:
            text = message() if callable(message) else message
            raise TimeoutError(f"condition not met in {timeout}s: {text} (last: {last!r})")
        time.sleep(interval)
