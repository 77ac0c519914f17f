"""The janitor's durable timer store (SQLAlchemy Core; SQLite or PostgreSQL).

One row per room with an auto-deletion date.  Timers are never held in Python
objects wholesale: the scheduler claims the earliest due ones in pages, with a
lease token, so several janitor replicas can share the store and each timer
fires from one of them (a crashed claimer's lease simply expires).
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from services.runtime.store import create_tables

metadata = sa.MetaData()

timers = sa.Table(
    "timers",
    metadata,
    sa.Column("room_id", sa.String(80), primary_key=True),
    sa.Column("due_ms", sa.BigInteger, nullable=False),
    sa.Column("lease_token", sa.String(40), nullable=True),
    sa.Column("lease_until", sa.BigInteger, nullable=True),
    sa.Index("timers_due", "due_ms"),
)

leases = sa.Table(
    "leases",
    metadata,
    sa.Column("name", sa.String(80), primary_key=True),
    sa.Column("owner", sa.String(80), nullable=False),
    sa.Column("until_ms", sa.BigInteger, nullable=False),
)

positions = sa.Table(
    "consumer_positions",
    metadata,
    sa.Column("consumer", sa.String(80), primary_key=True),
    sa.Column("position", sa.BigInteger, nullable=False),
)


@dataclass(frozen=True)
class Timer:
    """A claimed timer: fire `RoomAutoDeletionDue(room_id, due_ms)`."""

    room_id: str
    due_ms: int
    lease_token: str = ""


class TimerStore:
    """Timers, sweep leases and consumer positions of the janitor."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.postgres = engine.dialect.name == "postgresql"
        create_tables(metadata, engine)

    def _insert(self, table: sa.Table) -> Any:
        """The dialect's INSERT (with ON CONFLICT support)."""
        return (pg_insert if self.postgres else sqlite_insert)(table)

    # ---- timers --------------------------------------------------------------------

    def set(self, room_id: str, due_ms: int) -> None:
        """Create or move a room's timer (a moved timer loses any lease)."""
        stmt = self._insert(timers).values(room_id=room_id, due_ms=due_ms)
        stmt = stmt.on_conflict_do_update(
            index_elements=["room_id"],
            set_={"due_ms": due_ms, "lease_token": None, "lease_until": None},
        )
        with self.engine.begin() as conn:
            conn.execute(stmt)

    def set_many(self, rows: Iterable[tuple[str, int]]) -> int:
        """Bulk insert (benchmarks, rebuilds)."""
        values = [{"room_id": r, "due_ms": d} for r, d in rows]
        if not values:
            return 0
        with self.engine.begin() as conn:
            conn.execute(timers.insert(), values)
        return len(values)

    def clear(self, room_id: str) -> None:
        """Remove a room's timer (date cleared or room deleted)."""
        with self.engine.begin() as conn:
            conn.execute(timers.delete().where(timers.c.room_id == room_id))

    def claim_due(self, now_ms: int, limit: int, lease_ms: int) -> list[Timer]:
        """Claim up to `limit` due timers no one else holds; earliest first."""
        token = uuid.uuid4().hex
        candidates = (
            sa.select(timers.c.room_id)
            .where(
                timers.c.due_ms <= now_ms,
                sa.or_(timers.c.lease_until.is_(None), timers.c.lease_until < now_ms),
            )
            .order_by(timers.c.due_ms)
            .limit(limit)
        )
        if self.postgres:
            candidates = candidates.with_for_update(skip_locked=True)
        with self.engine.begin() as conn:
            conn.execute(
                timers.update()
                .where(timers.c.room_id.in_(candidates.scalar_subquery()))
                .values(lease_token=token, lease_until=now_ms + lease_ms)
            )
            rows = conn.execute(
                sa.select(timers.c.room_id, timers.c.due_ms)
                .where(timers.c.lease_token == token)
                .order_by(timers.c.due_ms)
            ).all()
        return [Timer(r[0], r[1], token) for r in rows]

    def fired(self, fired: Iterable[Timer]) -> None:
        """Remove timers that fired, unless they were moved in the meantime.

        Moving a timer clears its lease token, so deleting by token (one
        statement per claimed page) spares moved timers.
        """
        tokens = {t.lease_token for t in fired if t.lease_token}
        with self.engine.begin() as conn:
            for token in tokens:
                conn.execute(timers.delete().where(timers.c.lease_token == token))

    def next_due(self) -> int | None:
        """The earliest due time of any pending timer."""
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.min(timers.c.due_ms))).scalar()

    def count(self) -> int:
        """Pending timers."""
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(timers)).scalar() or 0)

    def due_of(self, room_id: str) -> int | None:
        """A room's due time, if it has a timer."""
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(timers.c.due_ms).where(timers.c.room_id == room_id)
            ).scalar_one_or_none()

    # ---- leases for periodic sweeps ---------------------------------------------------

    def try_lease(self, name: str, owner: str, now_ms: int, until_ms: int) -> bool:
        """Take the named lease if it is free or expired; True if we hold it now."""
        with self.engine.begin() as conn:
            taken = conn.execute(
                leases.update()
                .where(
                    leases.c.name == name,
                    sa.or_(leases.c.until_ms < now_ms, leases.c.owner == owner),
                )
                .values(owner=owner, until_ms=until_ms)
            ).rowcount
            if taken:
                return True
            inserted = conn.execute(
                self._insert(leases)
                .values(name=name, owner=owner, until_ms=until_ms)
                .on_conflict_do_nothing(index_elements=["name"])
            ).rowcount
            return bool(inserted)

    # ---- room events, with the consumer's position ------------------------------------

    def position(self, consumer: str) -> int | None:
        """The last stream sequence `consumer` processed."""
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(positions.c.position).where(positions.c.consumer == consumer)
            ).scalar_one_or_none()

    @functools.cached_property
    def _apply_statements(self) -> tuple[Any, Any, Any]:
        """`apply`'s timer upsert, delete and position compare-and-raise, built once."""
        upsert = self._insert(timers)
        upsert = upsert.on_conflict_do_update(
            index_elements=["room_id"],
            set_={"due_ms": upsert.excluded.due_ms, "lease_token": None, "lease_until": None},
        )
        moved = self._insert(positions)
        moved = moved.on_conflict_do_update(
            index_elements=["consumer"],
            set_={
                "position": sa.func.greatest(positions.c.position, moved.excluded.position)
                if self.postgres
                else sa.func.max(positions.c.position, moved.excluded.position)
            },
        )
        delete = timers.delete().where(timers.c.room_id.in_(sa.bindparam("gone", expanding=True)))
        return upsert, delete, moved

    def apply(self, changes: Iterable[tuple[str, int | None]], consumer: str, seq: int) -> None:
        """Set (due ms) or clear (None) room timers and record `consumer` at `seq`, atomically."""
        latest = dict(changes)  # the last change of a room in the batch wins
        upsert, delete, moved = self._apply_statements
        with self.engine.begin() as conn:
            due = [{"room_id": r, "due_ms": d} for r, d in latest.items() if d is not None]
            if due:
                conn.execute(upsert, due)
            gone = [r for r, d in latest.items() if d is None]
            if gone:
                conn.execute(delete, {"gone": gone})
            conn.execute(moved, [{"consumer": consumer, "position": seq}])
