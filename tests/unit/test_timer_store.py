"""The janitor's timer store on a real SQLite file: set, move, clear, claim, leases."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from services.janitor.timers import TimerStore


def store(tmp_path: Path) -> TimerStore:
    return TimerStore(sa.create_engine(f"sqlite:///{tmp_path / 'timers.sqlite'}"))


def test_set_move_and_clear(tmp_path: Path) -> None:
    timers = store(tmp_path)
    timers.set("a", 100)
    timers.set("a", 200)  # moved
    timers.set("b", 50)
    assert (timers.count(), timers.next_due(), timers.due_of("a")) == (2, 50, 200)
    timers.clear("b")
    timers.clear("b")
    assert timers.count() == 1


def test_claims_are_exclusive_until_the_lease_expires(tmp_path: Path) -> None:
    timers = store(tmp_path)
    timers.set_many([(f"r{i}", i) for i in range(10)])
    first = timers.claim_due(now_ms=5, limit=3, lease_ms=1000)
    assert [t.room_id for t in first] == ["r0", "r1", "r2"]
    second = timers.claim_due(now_ms=5, limit=10, lease_ms=1000)
    assert [t.room_id for t in second] == ["r3", "r4", "r5"]
    assert timers.claim_due(now_ms=5, limit=10, lease_ms=1000) == []
    again = timers.claim_due(now_ms=2000, limit=3, lease_ms=1000)  # leases expired
    assert [t.room_id for t in again] == ["r0", "r1", "r2"]


def test_a_moved_timer_is_not_removed_by_its_old_firing(tmp_path: Path) -> None:
    timers = store(tmp_path)
    timers.set("a", 10)
    claimed = timers.claim_due(now_ms=10, limit=10, lease_ms=1000)
    timers.set("a", 99)  # the room's date moved while firing
    timers.fired(claimed)
    assert timers.due_of("a") == 99
    assert timers.claim_due(now_ms=10, limit=10, lease_ms=1000) == []  # not due any more
    timers.fired(timers.claim_due(now_ms=99, limit=10, lease_ms=1000))
    assert timers.due_of("a") is None


def test_sweep_leases_have_one_holder(tmp_path: Path) -> None:
    timers = store(tmp_path)
    assert timers.try_lease("end_empty", "x", now_ms=0, until_ms=100)
    assert not timers.try_lease("end_empty", "y", now_ms=50, until_ms=150)
    assert timers.try_lease("end_empty", "y", now_ms=101, until_ms=200)
