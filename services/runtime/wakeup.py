"""Cross-replica wake-ups: "I committed" on core NATS, so the leading follower reacts at once.

Only one replica runs a service's outbox and projections (see `leader.py`);
without this, commits made by the other replicas would wait for the leader's
next poll.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from faststream.nats import NatsBroker


class CommitSignal:
    """Publishes a wake-up after each local commit; pokes local followers on any replica's."""

    def __init__(self, broker: NatsBroker, service: str) -> None:
        self.broker = broker
        self.subject = f"meetplane.wake.{service}"
        self.pokes: list[Callable[[], None]] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        self._pending = False

        @broker.subscriber(self.subject, title=self.subject, include_in_schema=False)
        async def _woken(_: bytes) -> None:
            for poke in self.pokes:
                poke()

    async def bind(self) -> None:
        """Remember the event loop (call once the service runs)."""
        self.loop = asyncio.get_running_loop()

    def committed(self) -> None:
        """Commit listener (any thread): one wake-up per burst of commits."""
        loop = self.loop
        if loop is None or loop.is_closed() or self._pending:
            return
        self._pending = True
        loop.call_soon_threadsafe(lambda: loop.create_task(self._publish()))

    async def _publish(self) -> None:
        self._pending = False
        with contextlib.suppress(Exception):  # a lost wake-up only costs one poll interval
            await self.broker.publish(b"", self.subject)
