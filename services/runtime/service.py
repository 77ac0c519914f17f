"""The lifecycle every service process shares: start, run background tasks, stop cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from faststream.nats import NatsBroker

from services.runtime.commands import CHECKS_CONTEXT_KEY, CommandRouter, DependencyCheck
from services.runtime.health import serve_health
from services.runtime.heap import freeze_startup_heap
from services.runtime.logging import get_logger
from services.runtime.nats import start_broker
from services.runtime.rpc import nats_connected
from services.runtime.settings import RuntimeSettings

log = get_logger("meetplane.service")


@dataclass
class ServiceParts:
    """What a service's composition root builds: a broker and background tasks."""

    name: str
    broker: NatsBroker
    # The commands it answers (subscribed once the broker is connected).
    router: CommandRouter | None = None
    background: list[Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=list)
    on_started: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    # Ask background loops to finish their current unit of work (called before waiting).
    stoppers: list[Callable[[], None]] = field(default_factory=list)
    on_stop: list[Callable[[], None]] = field(default_factory=list)
    # Dependencies the service probes on every ping (e.g. "storage"), for readiness.
    checks: dict[str, DependencyCheck] = field(default_factory=dict)
    # Whether the service publishes to or consumes the integration stream: such a
    # service waits at start until the stream exists (it is declared by an operator
    # or a Job) instead of crash-looping; one that only answers commands does not.
    uses_stream: bool = True


def broker_connected(broker: NatsBroker) -> bool:
    """Whether the broker's NATS connection is up right now."""
    return nats_connected(broker)


class RunningService:
    """A started service: its broker is connected and its tasks run."""

    def __init__(self, parts: ServiceParts, settings: RuntimeSettings) -> None:
        self.parts = parts
        self.settings = settings
        self.tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Connect, start subscribers and background tasks."""
        self.parts.broker.context.set_global(CHECKS_CONTEXT_KEY, self.parts.checks)
        stream = self.settings.stream_name if self.parts.uses_stream else None
        await start_broker(self.parts.broker, stream=stream)
        if self.parts.router is not None:
            await self.parts.router.bind()
            await self._wait_reachable()
        for hook in self.parts.on_started:
            await hook()
        for job in self.parts.background:
            self.tasks.append(asyncio.create_task(job()))
        if self.settings.health_port:
            self.tasks.append(
                asyncio.create_task(
                    serve_health(
                        self.parts.name,
                        self.settings.health_host,
                        self.settings.health_port,
                        self.ready,
                    )
                )
            )
        log.info("service.started", service=self.parts.name)

    async def _wait_reachable(self, timeout: float = 10.0) -> None:
        """Return once the service answers its own ping through the server.

        Nobody is told the service runs before its command subscriptions are
        live on the server.
        """
        from services.runtime.rpc import request

        connection = self.parts.broker._connection
        if connection is None:
            return
        await connection.flush()
        deadline = asyncio.get_running_loop().time() + timeout
        attempts = 0
        while True:
            attempts += 1
            reply = await request(self.parts.broker, self.parts.name, "ping", timeout=1.0)
            if reply.ok or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.02)
        if attempts > 1:
            log.warning("service.slow_to_subscribe", service=self.parts.name, attempts=attempts)

    def ready(self) -> bool:
        """Ready while the NATS connection is up."""
        return broker_connected(self.parts.broker)

    async def stop(self, grace: float = 3.0) -> None:
        """Stop in order: background loops, then handlers, then stores.

        Loops finish their current batch while the broker can still publish it.
        A task awaiting `asyncio.to_thread` keeps its thread running when
        cancelled, so stores are closed only after every loop and handler has
        returned; closing a SQLite connection under a running query crashes.
        """
        for stop in self.parts.stoppers:
            stop()
        if self.tasks:
            _, pending = await asyncio.wait(self.tasks, timeout=grace)
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self.parts.router is not None:
            await self.parts.router.close(grace)  # waits for commands in progress
        with contextlib.suppress(Exception):
            await self.parts.broker.stop()
        for close in self.parts.on_stop:
            with contextlib.suppress(Exception):
                close()
        log.info("service.stopped", service=self.parts.name)


async def run_until_signalled(
    build: Callable[[], Awaitable[ServiceParts]], settings: RuntimeSettings
) -> None:
    """Build and start a service, then run until SIGINT/SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    running = RunningService(await build(), settings)
    await running.start()
    freeze_startup_heap()
    try:
        await stop.wait()
    finally:
        await running.stop()
