"""A log follower skips the writes of batches that mean nothing to it, and records them later.

The meetings service's followers read every room event it records (its record
of a room); the outbox, the view and the media effects have nothing to do for
them.  Writing their positions anyway was three store transactions per room
event; now the position is recorded once the log goes quiet (or the skip ages).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import Notification

from services.runtime.follower import LogFollower


class Thing(Aggregate):
    def __init__(self, relevant: bool) -> None:
        self.relevant = relevant


class Recorded:
    """A follower's processor and its position store, in memory."""

    def __init__(self) -> None:
        self.position = 0
        self.records: list[tuple[int, int]] = []
        self.batches: list[tuple[int, list[int]]] = []

    async def process(self, start: int, notifications: Sequence[Notification]) -> bool:
        self.batches.append((start, [n.id for n in notifications]))
        if not any(b'"relevant":true' in n.state for n in notifications):
            return False
        assert start == self.position, "a batch starts at the recorded position"
        self.position = notifications[-1].id
        return True

    def record(self, start: int, end: int) -> None:
        assert start == self.position, "a skipped range starts at the recorded position"
        self.records.append((start, end))
        self.position = end


async def _wait(condition: object, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.005)


@contextlib.asynccontextmanager
async def following(app: Application, seen: Recorded, **options: Any) -> AsyncIterator[LogFollower]:
    """A running follower of `app`'s log that hands batches to `seen`; stopped on exit."""
    follower = LogFollower(
        "test", app.recorder, lambda: seen.position, seen.process, record=seen.record, **options
    )
    runner = asyncio.create_task(follower.run())
    try:
        yield follower
    finally:
        follower.stop()
        await runner


async def test_skipped_batches_are_recorded_once_the_log_is_quiet() -> None:
    app, seen = Application(), Recorded()
    async with following(app, seen, batch_size=2, flush_delay=0.05, flush_age=60) as follower:
        app.save(Thing(False), Thing(False), Thing(False))  # notifications 1-3
        follower.poke()
        assert await follower.wait_until(3)
        # Processed (read-your-writes on the leader) but not yet written...
        await _wait(lambda: seen.records)
        # ...then written once for the whole skipped range, not once per batch.
        assert seen.records == [(0, 3)]
        assert seen.batches == [(0, [1, 2]), (0, [3])]

        app.save(Thing(False))  # 4: skipped
        app.save(Thing(True))  # 5: relevant, written from the recorded position
        follower.poke()
        assert await follower.wait_until(5)
        await _wait(lambda: seen.position == 5)
        assert seen.records == [(0, 3)], "a relevant batch records the skipped range itself"


async def test_a_long_run_of_skipped_batches_is_recorded_before_the_log_goes_quiet() -> None:
    app, seen = Application(), Recorded()
    async with following(app, seen, batch_size=1, flush_delay=60, flush_age=0) as follower:
        app.save(Thing(False), Thing(False))
        follower.poke()
        await _wait(lambda: seen.position == 2)
        assert seen.records == [(0, 1), (1, 2)]


async def test_a_stopping_follower_records_what_it_skipped() -> None:
    app, seen = Application(), Recorded()
    async with following(app, seen, flush_delay=60, flush_age=60) as follower:
        app.save(Thing(False))
        follower.poke()
        assert await follower.wait_until(1)
        assert seen.records == []
    assert seen.records == [(0, 1)]


class CountedSelects:
    """Counts the follower's reads of the log (wraps the recorder's select)."""

    def __init__(self, app: Application) -> None:
        self.count = 0
        select = app.recorder.select_notifications

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return select(*args, **kwargs)

        app.recorder.select_notifications = counted  # type: ignore[method-assign]


@contextlib.asynccontextmanager
async def read_once(
    seen: Recorded, **options: Any
) -> AsyncIterator[tuple[Application, CountedSelects, LogFollower]]:
    """A follower of a new, empty log, once it has read to the end of it."""
    app = Application()
    selects = CountedSelects(app)
    async with following(app, seen, **options) as follower:
        await _wait(lambda: selects.count == 1)
        yield app, selects, follower


def offer(follower: LogFollower, app: Application, *things: Thing) -> int:
    """Save `things` and hand the commit's notifications to the follower, as a commit
    listener of a ServiceApplication does; returns the last notification id."""
    recordings = app.save(*things)
    follower.offer([r.notification for r in recordings])
    return recordings[-1].notification.id


async def test_offered_commits_are_processed_without_reading_them_back() -> None:
    seen = Recorded()
    async with read_once(seen) as (app, selects, follower):
        for _ in range(3):
            last = offer(follower, app, Thing(True), Thing(True))
            await _wait(lambda last=last: seen.position == last)
        assert seen.batches == [(0, [1, 2]), (2, [3, 4]), (4, [5, 6])]
        assert selects.count == 1, "each commit was taken as offered, not selected"


async def test_a_gap_before_what_was_offered_is_read_from_the_store() -> None:
    seen = Recorded()
    async with read_once(seen) as (app, selects, follower):
        app.save(Thing(True), Thing(True))  # 1-2: committed elsewhere, never offered
        offer(follower, app, Thing(True))  # 3
        await _wait(lambda: seen.position == 3)
        assert seen.batches == [(0, [1, 2, 3])], "nothing before the offered one is lost"
        assert selects.count == 2


async def test_a_follower_reads_the_log_once_per_wake_up() -> None:
    seen = Recorded()
    async with read_once(seen) as (app, selects, follower):
        for n in range(1, 5):
            app.save(Thing(True))
            follower.poke()
            await _wait(lambda n=n: seen.position == n)
        # The follower works in order: a read after the 3rd batch happened before the 4th.
        assert selects.count == 1 + 4, "no second read to find the end it already saw"


class Gated(Recorded):
    """Holds each batch until released: a wait can start while the batch is in work."""

    def __init__(self) -> None:
        super().__init__()
        self.taken = asyncio.Event()
        self.release = asyncio.Event()

    async def process(self, start: int, notifications: Sequence[Notification]) -> bool:
        self.taken.set()
        await self.release.wait()
        return await super().process(start, notifications)


async def test_waiting_for_an_offered_commit_reads_nothing_back() -> None:
    """A command waits for its own commit (the outbox's read-your-writes) while the
    follower works on it: the offer already woke the follower, so the wait must not
    send it to read the log again once the batch is done."""
    seen = Gated()
    async with read_once(seen) as (app, selects, follower):
        last = offer(follower, app, Thing(True))
        await seen.taken.wait()
        waiting = asyncio.create_task(follower.wait_until(last))
        await asyncio.sleep(0)  # let the wait start (and wake the follower) before release
        seen.release.set()
        assert await waiting
        # A wake-up left by the wait would be taken now and its read queued on the
        # follower's single thread: once the wake-up is gone, a no-op queued there
        # runs after any such read.
        await _wait(lambda: not follower._wake.is_set())
        await follower.run_sync(lambda: None)
        assert selects.count == 1, "no read after a wait for what was offered"


async def test_waiting_for_a_commit_made_elsewhere_reads_the_log() -> None:
    seen = Recorded()
    async with read_once(seen) as (app, _selects, follower):
        last = app.save(Thing(True))[-1].notification.id  # another replica's commit
        assert await follower.wait_until(last, timeout=2.0)
        assert seen.batches == [(0, [1])]


def relevant(notifications: Sequence[Notification]) -> bool:
    return any(b'"relevant":true' in n.state for n in notifications)


async def test_a_commit_it_does_not_want_waits_for_the_next_wake_up() -> None:
    """The meetings view is not woken for the service's record of a room: that offer
    is taken with the next wanted one, or when someone waits for its position."""
    seen = Recorded()
    async with read_once(seen, wants=relevant) as (app, selects, follower):
        offer(follower, app, Thing(False))
        await asyncio.sleep(0)  # a wake-up (call_soon_threadsafe) would be set by now
        assert not follower._wake.is_set(), "the unwanted commit woke nobody"
        last = offer(follower, app, Thing(True))
        await _wait(lambda: seen.position == last)
        assert seen.batches == [(0, [1, 2])], "taken with the next wanted one"
        unwanted = offer(follower, app, Thing(False))
        assert await follower.wait_until(unwanted, timeout=0.5), "a wait takes it at once"
        assert seen.batches[-1] == (2, [3])
        assert selects.count == 1


async def test_offered_beyond_a_full_batch_are_read_at_once() -> None:
    """A commit larger than a batch: the first batch is taken as offered, the rest is
    read from the log right after it, not at the next poll."""
    seen = Recorded()
    async with read_once(seen, batch_size=2, poll_interval=30) as (app, _selects, follower):
        last = offer(follower, app, Thing(True), Thing(True), Thing(True))
        assert await follower.wait_until(last, timeout=5.0)
        assert seen.batches == [(0, [1, 2]), (2, [3])]


async def _nothing_for(condition: object, seconds: float) -> bool:
    """Whether `condition` stays false for `seconds` (a lingering follower holds still)."""
    try:
        await _wait(condition, timeout=seconds)
    except TimeoutError:
        return True
    return False


async def test_a_lingering_follower_takes_a_trickle_of_commits_as_one_batch() -> None:
    """One client creating rooms: each commit was a view transaction of its own; with a
    linger, the commits of the next moment join the first, and a wait for a position
    (a list reading its own writes) ends the linger at once."""
    seen = Recorded()
    async with read_once(seen, linger=30.0) as (app, _selects, follower):
        offer(follower, app, Thing(True))
        assert await _nothing_for(lambda: seen.batches, 0.2), "the first commit waits"
        offer(follower, app, Thing(True))
        last = offer(follower, app, Thing(True))
        async with asyncio.timeout(5):
            assert await follower.wait_until(last)
        assert seen.batches == [(0, [1, 2, 3])]


async def test_a_full_batch_ends_the_linger() -> None:
    seen = Recorded()
    async with read_once(seen, batch_size=2, linger=30.0) as (app, _selects, follower):
        offer(follower, app, Thing(True))
        offer(follower, app, Thing(True))
        await _wait(lambda: seen.position == 2)  # long before the 30 s linger
        assert seen.batches == [(0, [1, 2])]


async def test_stopping_ends_the_linger() -> None:
    seen = Recorded()
    async with asyncio.timeout(5):  # not the 30 s linger
        async with read_once(seen, linger=30.0) as (app, _selects, follower):
            offer(follower, app, Thing(True))
            assert await _nothing_for(lambda: seen.batches, 0.1)
    # Stopped at once; the commit is in the log, for whoever follows it next.
    assert seen.batches == []
