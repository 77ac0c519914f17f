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
