"""Follow a service's eventsourcing notification log from a recorded position.

The outbox, the read-model projections and the side-effect runners are all
followers: they read the notifications after their last recorded position,
process a batch, and record the new position.  SQLite recorders cannot push
(no LISTEN/NOTIFY), so a follower is woken by the application's commit
listener (and by other replicas over NATS, see `wakeup.py`) and otherwise polls.

A commit in this process hands its notifications to the follower with the wake-up
(`offer`).  When they continue the follower's position without a gap they are the
next batch as the store would return it (ids are assigned in commit order and the
listener runs after the commit), so the follower takes them without reading them
back; anything else (a gap: another replica's commit, a notification it has not
been offered yet) falls back to the select.  A wake-up that only announced
notifications the follower has already taken reads nothing: the select runs after
a gap, a bare `poke` (another replica committed, a caller waits for a position not
offered here), a dropped offer, or a (re)read of the recorded position.

A follower that `wants` only some notifications (the meetings view, not the
service's record of a room) is not woken for a commit of nothing it wants: the
offer waits in memory for the next wake-up, a wait for its position, or the poll.

Each follower runs its store calls where the store's calls belong
(`services.runtime.store.runs_on_loop`): on the event loop for SQLite, else on
its own single thread, so it never waits behind command handlers on the
default thread pool.  It keeps its position in memory while it leads (it is the
only writer of it).

A batch whose position can wait returns False from `process`: one that means
nothing to the follower (the meetings outbox reading the service's record of a
room, say), or one whose work is idempotent and done (the outbox published it).
The follower records the position later, with one write, once the log has been
quiet for `flush_delay` or the first unrecorded batch is `flush_age` old.  Until
then a restart re-reads those notifications, which is harmless (they mean
nothing, or are re-published with the same ids), and another replica waiting on
the recorded position waits at most that long.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from eventsourcing.persistence import (
    ApplicationRecorder,
    IntegrityError,
    Notification,
    ProcessRecorder,
    Tracking,
)

from services.runtime.leader import Leadership, Lease
from services.runtime.logging import get_logger
from services.runtime.retry import retry_forever
from services.runtime.store import runs_on_loop

log = get_logger("meetplane.follower")

# `process(start, notifications)`: the batch follows the recorded position `start`.
# It records the batch's last id as the new position and returns None or True, or
# returns False when it did not record it (the follower records it later).
ProcessBatch = Callable[[int, Sequence[Notification]], Awaitable[bool | None]]
# `record(start, end)`: move the recorded position from `start` to `end` (nothing else);
# a store call, run on the follower's thread.
RecordPosition = Callable[[int, int], None]
T = TypeVar("T")


class TrackingPosition:
    """A follower's position kept as tracking records in the service's own event store.

    Positions only grow and the work behind them is idempotent, so no
    compare-and-set: a replica that recorded the same position first turns ours
    into a duplicate, which is harmless (the outbox's publishes carried the same
    `Nats-Msg-Id`; effects are idempotent).
    """

    def __init__(self, recorder: ProcessRecorder, name: str) -> None:
        self.recorder = recorder
        self.name = name

    def read(self) -> int | None:
        """The last recorded notification id."""
        return self.recorder.max_tracking_id(self.name)

    def write(self, _start: int, end: int) -> None:
        """Record `end` (a `RecordPosition`: the start is not compared)."""
        try:
            self.recorder.insert_tracking(Tracking(self.name, end))
        except IntegrityError:
            log.info("follower.position_taken", follower=self.name, position=end)


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
        executor: ThreadPoolExecutor | None = None,
        record: RecordPosition | None = None,
        flush_delay: float = 0.05,
        flush_age: float = 0.1,
        wants: Callable[[Sequence[Notification]], bool] | None = None,
        on_loop: bool | None = None,
        linger: float = 0.0,
    ) -> None:
        self.name = name
        self._recorder = recorder
        self._position = position
        self._process = process
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self.leadership = Leadership(f"follower {name}", lease)
        self.executor = executor or ThreadPoolExecutor(1, thread_name_prefix=name)
        self.on_loop = runs_on_loop(recorder) if on_loop is None else on_loop
        self._loop_thread: int | None = None
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()
        self._linger = linger
        self._hurry = asyncio.Event()  # someone waits for a position: do not linger
        self._loop: asyncio.AbstractEventLoop | None = None
        self._record = record
        self._flush_delay = flush_delay
        self._flush_age = flush_age
        self._known: int | None = None  # what we processed, while leading
        self._recorded = 0  # what the store holds, while leading (<= _known)
        self._skipped_since: float | None = None  # when _known first passed _recorded
        self._processed_up_to = 0
        self._stopping = False
        self._offered: list[Notification] = []  # from commits here, while leading
        self._offered_lock = threading.Lock()
        self._offered_up_to = 0  # the last notification id offered here
        self._unannounced_up_to = 0  # the last one offered without a wake-up
        self._wants = wants
        self._select_needed = True  # something not offered may be in the log

    @property
    def leading(self) -> bool:
        """Whether this replica runs the follower now."""
        return self.leadership.leading

    async def run_sync(self, func: Callable[..., T], *args: Any) -> T:
        """Run a store call: on the loop (SQLite) or on this follower's own thread."""
        if self.on_loop:
            return func(*args)
        return await asyncio.get_running_loop().run_in_executor(self.executor, func, *args)

    def poke(self) -> None:
        """Wake the follower to read the log now; safe to call from any thread."""
        with self._offered_lock:
            self._select_needed = True
        self._wake_up()

    def _wake_up(self) -> None:
        self._signal(self._wake)

    def _signal(self, event: asyncio.Event) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        if threading.get_ident() == self._loop_thread:
            event.set()  # a commit on the loop: no self-addressed wake-up through the pipe
        else:
            loop.call_soon_threadsafe(event.set)

    def offer(self, notifications: Sequence[Notification]) -> None:
        """Commit listener (any thread): the commit's notifications, then a wake-up.

        Kept only while leading and up to a few batches: beyond that the select
        reads them (a follower far behind gains nothing from a copy in memory).
        """
        if not notifications or not self.leading:
            self.poke()
            return
        wanted = self._wants is None or self._wants(notifications)
        with self._offered_lock:
            if len(self._offered) < 4 * self._batch_size:
                self._offered.extend(notifications)
            else:
                self._select_needed = True  # dropped: the select reads them
            full = len(self._offered) >= self._batch_size
            self._offered_up_to = max(self._offered_up_to, notifications[-1].id)
            if not wanted and not self._select_needed:
                self._unannounced_up_to = self._offered_up_to
                return  # nothing it wants: taken at its next wake-up
        if full and self._linger:
            self._signal(self._hurry)  # a batch is there: no reason to linger for more
        self._wake_up()

    def _take_offered(self, known: int) -> tuple[list[Notification], bool]:
        """The offered notifications right after `known`, in order and without a gap.

        Returns them (at most a batch) and whether offered ones remain beyond them
        (after a gap or the batch): the caller then goes on reading.  Offered ones at
        or before `known` are dropped (a select already returned them).
        """
        with self._offered_lock:
            offered, self._offered = self._offered, []
        if not offered:
            return [], False
        offered.sort(key=lambda n: n.id)
        batch: list[Notification] = []
        expected = known + 1
        for notification in offered:
            if notification.id < expected:
                continue
            if notification.id > expected or len(batch) == self._batch_size:
                # A gap or a full batch: the rest is dropped here and read next.
                with self._offered_lock:
                    self._select_needed = True
                return batch, True
            batch.append(notification)
            expected += 1
        return batch, False

    def stop(self) -> None:
        """Ask the loop to finish after its current batch (safe from any thread)."""
        self._stopping = True
        self._signal(self._hurry)
        self.poke()

    async def wait_until(self, notification_id: int, timeout: float = 5.0) -> bool:
        """Wait until `notification_id` is processed (read-your-writes), by any replica."""
        if self._processed_up_to >= notification_id:
            return True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        delay = 0.005
        while True:
            self._hurry.set()  # a lingering follower takes what it has now
            if not self.leading:
                # Another replica leads: watch the position it records.
                position = await self.run_sync(self._position) or 0
                self._processed_up_to = max(self._processed_up_to, position)
            elif notification_id > self._offered_up_to:
                self.poke()  # not committed here (or not yet offered): read the log
            elif notification_id <= self._unannounced_up_to:
                self._wake_up()  # offered without a wake-up: take it now
            if self._processed_up_to >= notification_id:
                return True
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            self._progress.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(delay, remaining)):  # no task, unlike wait_for
                    await self._progress.wait()
            delay = min(delay * 2, 0.1)

    async def catch_up(self) -> int:
        """Process everything recorded so far; returns the number of notifications."""
        total = 0
        while not self._stopping:
            if self._known is None:
                recorded: int | None = await self.run_sync(self._position)
                self._known = self._recorded = recorded or 0
                self._skipped_since = None
                self._select_needed = True
            # A poke from here on means a commit this select may not see.
            self._wake.clear()
            with self._offered_lock:
                select_needed, self._select_needed = self._select_needed, False
            notifications: Sequence[Notification]
            notifications, more = self._take_offered(self._known)
            if not notifications and (more or select_needed):
                notifications = await self.run_sync(self._select, self._known)
                more = len(notifications) == self._batch_size
            if not notifications:
                self._advance(self._known)
                return total
            end = notifications[-1].id
            if await self._process(self._recorded, notifications) is False:
                if self._record is None:
                    raise TypeError(f"follower {self.name}: a skipped batch needs `record`")
                if self._skipped_since is None:
                    self._skipped_since = time.monotonic()
            else:
                self._recorded, self._skipped_since = end, None
            total += len(notifications)
            self._known = end
            self._advance(end)
            if self._skipped_since is not None and (
                time.monotonic() - self._skipped_since >= self._flush_age
            ):
                await self.flush()
            if not more:
                return total  # read to the end: a later commit pokes again
        return total

    async def flush(self) -> None:
        """Record the position of batches that were skipped without a write."""
        if self._known is None or self._skipped_since is None or self._record is None:
            return
        await self.run_sync(self._record, self._recorded, self._known)
        self._recorded, self._skipped_since = self._known, None

    def _select(self, start: int) -> Sequence[Notification]:
        return self._recorder.select_notifications(
            start, self._batch_size, None, (), inclusive_of_start=False
        )

    def _advance(self, position: int) -> None:
        self._processed_up_to = max(self._processed_up_to, position)
        self._progress.set()

    async def run(self) -> None:
        """Follow the log until `stop()`; errors are logged and retried with backoff."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()

        def failed(error: BaseException, attempt: int, delay: float) -> None:
            log.warning(
                "follower.batch_failed",
                follower=self.name,
                error=repr(error),
                attempt=attempt,
                retry_in=round(delay, 2),
            )
            self._known = None  # re-read the recorded position

        try:
            await retry_forever(self._follow, failed)
            with contextlib.suppress(Exception):  # stopping: a restart re-reads the skip
                await self.flush()
        finally:
            await self.leadership.release()
            self.executor.shutdown(wait=False)

    async def _follow(self) -> None:
        while not self._stopping:
            if not await self.leadership.leads():
                self._known = None
                self._wake.clear()
                with self._offered_lock:
                    self._offered.clear()
                await self._idle()
                continue
            # catch_up reads to the end of the log; a commit after its last read
            # poked the wake-up, which `_idle` then returns on at once.
            await self.catch_up()
            if self._skipped_since is not None:
                # Record skipped batches once the log is quiet for a moment.
                if not await self._idle(self._flush_delay):
                    await self.flush()
                continue
            if not await self._idle():
                # Re-read the recorded position after a quiet poll interval: a rebuild
                # elsewhere resets it.  Not after every poke (one read per commit);
                # a position moved under us fails the writer's compare-and-set and
                # the retry re-reads it too.
                self._known = None
            elif self._linger:
                await self._gather()

    async def _gather(self) -> None:
        """After a wake-up at the log's head, let the commits of the next `linger` join it.

        At a trickle of commits (one client creating rooms) each was a batch of its
        own, a transaction and a wake-up each; lingering makes one batch of several.
        Nobody waits for it: `wait_until` (read-your-writes), a full batch and `stop`
        end the linger at once.
        """
        if not self._hurry.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._linger):
                    await self._hurry.wait()
        self._hurry.clear()

    def forget_position(self) -> None:
        """Re-read the recorded position before the next batch (after a reset here)."""
        self._known = None

    async def _idle(self, timeout: float | None = None) -> bool:
        """Wait for a poke or the poll interval (or `timeout`); whether it was a poke.

        The event is cleared before each select, not here: a commit poked while
        the last select ran wakes this wait at once instead of being lost.
        """
        try:
            # `asyncio.timeout`, not `wait_for`: no task started per wait (one per commit).
            async with asyncio.timeout(timeout or self._poll_interval):
                await self._wake.wait()
        except TimeoutError:
            return False
        return True
