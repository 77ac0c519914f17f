"""Follow a service's eventsourcing notification log from a recorded position.

The outbox and the read-model projections are both followers: they read the
notifications after their last recorded position, process a batch, and record
the new position.  SQLite recorders cannot push (no LISTEN/NOTIFY), so a
follower is woken by the application's commit listener and otherwise polls.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence

from eventsourcing.persistence import ApplicationRecorder, Notification

from services.runtime.leader import Lease
from services.runtime.logging import get_logger

log = get_logger("meetplane.follower")

ProcessBatch = Callable[[Sequence[Notification]], Awaitable[None]]


class LogFollower:
    """Reads the notification log after `position()` and hands batches to `process`.

    `position` and `process` belong to the caller: `process` must record the
    new position itself (ideally atomically with its effect) so a crash resumes
    from the last completed batch.
    """

    def __init__(
        self,
        name: str,
        recorder: ApplicationRecorder,
        position: Callable[[], int | None],
        process: ProcessBatch,
        *,
        batch_size: int = 256,
        poll_interval: float = 1.0,
        lease: Lease | None = None,
    ) -> None:
        self.name = name
        self._recorder = recorder
        self._position = position
        self._process = process
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._wake = asyncio.Event()
        self._progress = asyncio.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._processed_up_to = 0
        self._stopping = False
        self._lease = lease
        self.leading = lease is None
        self._lease_checked = 0.0

    def poke(self) -> None:
        """Wake the follower now; safe to call from any thread."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake.set)

    def stop(self) -> None:
        """Ask the loop to finish after its current batch (safe from any thread)."""
        self._stopping = True
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake.set)

    async def wait_until(self, notification_id: int, timeout: float = 5.0) -> bool:
        """Wait until `notification_id` is processed (read-your-writes), by any replica."""
        if self._processed_up_to >= notification_id:
            return True
        if not self.leading:
            return await self._wait_for_leader(notification_id, timeout)
        self.poke()
        async with self._progress:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._progress.wait_for(lambda: self._processed_up_to >= notification_id),
                    timeout,
                )
        return self._processed_up_to >= notification_id

    async def _wait_for_leader(self, notification_id: int, timeout: float) -> bool:
        # Another replica leads: watch the position it records.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        delay = 0.005
        while loop.time() < deadline:
            position = await asyncio.to_thread(self._position) or 0
            if position >= notification_id:
                return True
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)
        return False

    async def _lead(self) -> bool:
        """Hold the lease (or take it); standbys retry every poll interval."""
        if self._lease is None:
            return True
        now = asyncio.get_running_loop().time()
        if self.leading and now - self._lease_checked < 2.0:
            return True
        self._lease_checked = now
        held = await asyncio.to_thread(self._lease.try_acquire)
        if held != self.leading:
            log.info("follower.leadership", follower=self.name, leading=held)
        self.leading = held
        return held

    async def catch_up(self) -> int:
        """Process everything recorded so far; returns the number of notifications."""
        total = 0
        while not self._stopping:
            start = await asyncio.to_thread(self._position) or 0
            notifications = await asyncio.to_thread(
                self._recorder.select_notifications,
                start,
                self._batch_size,
                None,
                (),
                inclusive_of_start=False,
            )
            if not notifications:
                await self._advance(start)
                return total
            await self._process(notifications)
            total += len(notifications)
            await self._advance(notifications[-1].id)
            if len(notifications) < self._batch_size:
                return total
        return total

    async def _advance(self, position: int) -> None:
        async with self._progress:
            self._processed_up_to = max(self._processed_up_to, position)
            self._progress.notify_all()

    async def run(self) -> None:
        """Follow the log until `stop()`; errors are logged and retried with backoff."""
        self._loop = asyncio.get_running_loop()
        backoff = 0.2
        while not self._stopping:
            try:
                if not await self._lead():
                    await self._idle()
                    continue
                processed = await self.catch_up()
                backoff = 0.2
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("follower.batch_failed", follower=self.name, retry_in=backoff)
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), backoff)  # stop() interrupts
                backoff = min(backoff * 2, 10.0)
                continue
            if processed:
                continue
            await self._idle()
        if self._lease is not None:
            await asyncio.to_thread(self._lease.release)

    async def _idle(self) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self._poll_interval)
