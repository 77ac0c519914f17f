"""Periodic sweeps, as commands to the services that own the data.

Only one janitor replica runs a sweep per period: it must hold the sweep's
lease in the janitor's store.  A missing service is logged, not fatal.
"""

from __future__ import annotations

import asyncio
import socket
import uuid

from faststream.nats import NatsBroker

from contracts.commands.meetings import EndEmptyMeetings
from contracts.commands.recordings import SweepOrphans
from services.janitor.timers import TimerStore
from services.runtime.clock import Clock
from services.runtime.logging import get_logger
from services.runtime.rpc import request

log = get_logger("meetplane.janitor.housekeeping")


class Housekeeping:
    """Runs `end_empty` and `sweep_orphans` on their intervals."""

    def __init__(
        self,
        store: TimerStore,
        broker: NatsBroker,
        clock: Clock,
        *,
        empty_timeout_s: float,
        interval_s: float,
        orphan_interval_s: float,
        orphan_min_age_s: float,
    ) -> None:
        self.store = store
        self.broker = broker
        self.clock = clock
        self.empty_timeout_ms = int(empty_timeout_s * 1000)
        self.interval_s = interval_s
        self.orphan_interval_s = orphan_interval_s
        self.orphan_min_age_ms = int(orphan_min_age_s * 1000)
        self.owner = f"{socket.gethostname()}-{uuid.uuid4().hex[:6]}"
        self._stop = asyncio.Event()

    def stop(self) -> None:
        """End the loop."""
        self._stop.set()

    async def _leased(self, name: str, period_s: float) -> bool:
        now = self.clock.now_ms()
        return await asyncio.to_thread(
            self.store.try_lease, name, self.owner, now, now + int(period_s * 1000) - 100
        )

    async def sweep_once(self) -> dict[str, object]:
        """Run every sweep whose lease we get; returns what the services reported."""
        report: dict[str, object] = {}
        if await self._leased("end_empty", self.interval_s):
            reply = await request(
                self.broker,
                "meetings",
                "end_empty",
                EndEmptyMeetings(idleMs=self.empty_timeout_ms),
                timeout=30,
            )
            report["end_empty"] = reply.result if reply.ok else reply.error
            log.info("janitor.end_empty", ok=reply.ok, result=report["end_empty"])
        if await self._leased("sweep_orphans", self.orphan_interval_s):
            reply = await request(
                self.broker,
                "recordings",
                "sweep_orphans",
                SweepOrphans(minAgeMs=self.orphan_min_age_ms),
                timeout=120,
            )
            report["sweep_orphans"] = reply.result if reply.ok else reply.error
            log.info("janitor.sweep_orphans", ok=reply.ok, result=report["sweep_orphans"])
        return report

    async def run(self) -> None:
        """Sweep every interval until stopped."""
        while not self._stop.is_set():
            try:
                await self.sweep_once()
            except Exception:
                log.exception("janitor.sweep_failed")
            try:
                await asyncio.wait_for(self._stop.wait(), self.interval_s)
            except TimeoutError:
                continue
