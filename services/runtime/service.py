"""The lifecycle every service process shares: start, run background tasks, stop cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from faststream.nats import NatsBroker

from services.runtime.health import serve_health
from services.runtime.logging import get_logger
from services.runtime.settings import RuntimeSettings

log = get_logger("meetplane.service")


@dataclass
class ServiceParts:
    """What a service's composition root builds: a broker and background tasks."""

    name: str
    broker: NatsBroker
    background: list[Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=list)
    on_started: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    on_stop: list[Callable[[], None]] = field(default_factory=list)


def broker_connected(broker: NatsBroker) -> bool:
    """Whether the broker's NATS connection is up right now."""
    connection = broker._connection
    return bool(connection is not None and connection.is_connected)


class RunningService:
    """A started service: its broker is connected and its tasks run."""

    def __init__(self, parts: ServiceParts, settings: RuntimeSettings) -> None:
        self.parts = parts
        self.settings = settings
        self.tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Connect, start subscribers and background tasks."""
        await self.parts.broker.start()
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

    def ready(self) -> bool:
        """Ready while the NATS connection is up."""
        return broker_connected(self.parts.broker)

    async def stop(self) -> None:
        """Stop background tasks, drain the broker, close stores."""
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
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
    try:
        await stop.wait()
    finally:
        await running.stop()
