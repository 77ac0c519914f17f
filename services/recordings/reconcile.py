"""Stuck recordings are failed and their room freed.

A recording whose starter crashed between "starting" and "active" (or whose
egress never reported the end) would hold its room's recorder forever.  One
replica at a time (a lease) looks for recordings that started longer ago than
the timeouts and asks the application, which decides on the aggregate itself,
to fail them and release the recorder.  A start in a blocked room does the same
for that room at once (`RecordingsApplication.start`).
"""

from __future__ import annotations

import asyncio

from services.recordings.application import RecordingsApplication
from services.recordings.domain import RecordingError
from services.recordings.projection import RecordingsView
from services.runtime.leader import Lease
from services.runtime.logging import get_logger

log = get_logger("meetplane.recordings.reconcile")


class StuckRecordings:
    """The periodic reconciliation loop of the recordings service."""

    def __init__(
        self,
        app: RecordingsApplication,
        view: RecordingsView,
        lease: Lease,
        interval_s: float,
    ) -> None:
        self.app = app
        self.view = view
        self.lease = lease
        self.interval_s = interval_s
        self._stop = asyncio.Event()

    async def sweep(self) -> list[str]:
        """Fail every stuck recording now; returns their ids."""
        now = self.app.clock.now_ms()
        candidates = await asyncio.to_thread(
            self.view.stuck_candidates, now - self.app.start_timeout_ms, ("starting",)
        )
        candidates += await asyncio.to_thread(
            self.view.stuck_candidates, now - self.app.end_timeout_ms, ("ending",)
        )
        failed = []
        for recording_id in candidates:
            try:
                if await asyncio.to_thread(self.app.reconcile, recording_id):
                    failed.append(recording_id)
                    log.warning("recording.stuck_failed", recording_id=recording_id)
            except RecordingError:
                continue  # deleted meanwhile
        return failed

    async def run(self) -> None:
        """Sweep every interval while holding the lease, until stopped."""
        while not self._stop.is_set():
            try:
                if await asyncio.to_thread(self.lease.try_acquire):
                    await self.sweep()
            except Exception:
                log.exception("recording.reconcile_failed")
            try:
                await asyncio.wait_for(self._stop.wait(), timeout=self.interval_s)
            except TimeoutError:
                continue
        await asyncio.to_thread(self.lease.release)

    def stop(self) -> None:
        """Finish the current sweep and return."""
        self._stop.set()
