"""Cross-replica wake-ups: "I committed" on core NATS, so the leading follower reacts at once.

Only one replica runs a service's outbox and projections (see `leader.py`).  A
commit pokes the local followers directly; only when some of them is led by
another replica does the committing replica publish a wake-up for it, so a
single replica (the embedded default) never sends itself messages.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

from eventsourcing.persistence import Notification
from faststream.nats import NatsBroker

from services.runtime.follower import LogFollower


class CommitSignal:
    """Wakes the leaders of a service's followers after a commit on any replica."""

    def __init__(self, broker: NatsBroker, service: str) -> None:
        self.broker = broker
        self.subject = f"meetplane.wake.{service}"
        self.followers: list[LogFollower] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        self._pending = False

        @broker.subscriber(self.subject, title=self.subject, include_in_schema=False)
        async def _woken(_: bytes) -> None:
            for follower in self.followers:
                if follower.leading:
                    follower.poke()

    def follow(self, *followers: LogFollower) -> None:
        """Followers to wake on this replica when another replica commits."""
        self.followers.extend(followers)

    async def bind(self) -> None:
        """Remember the event loop (call once the service runs)."""
        self.loop = asyncio.get_running_loop()

    def committed(self, _notifications: Sequence[Notification] = ()) -> None:
        """Commit listener (any thread): one wake-up per burst, only if a leader is elsewhere."""
        loop = self.loop
        if loop is None or loop.is_closed() or self._pending:
            return
        if all(follower.leading for follower in self.followers):
            return  # the followers here lead and were poked directly
        self._pending = True
        loop.call_soon_threadsafe(lambda: loop.create_task(self._publish()))

    async def _publish(self) -> None:
        self._pending = False
        with contextlib.suppress(Exception):  # a lost wake-up only costs one poll interval
            await self.broker.publish(b"", self.subject)
