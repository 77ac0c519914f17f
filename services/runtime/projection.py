"""Read models as projections of a service's own event log: one way to project and rebuild.

A `TableView` owns tables in the service's view database and records, in the
same transaction as its rows, the last notification id it reflects.  The
position moves by compare-and-set (from the batch's start to its end), so a
projector that lost a race (a second leader, a rebuild in between) writes
nothing and starts again from what is recorded.  A `Projection` follows the log
from that position (one leader per service, see `leader.py`), advances each
aggregate's state in memory (`tracker.py`) and hands the view the latest state
of every aggregate a batch touched.

`rebuild()` empties the view; the projector replays the whole log into it.
`meetplane views rebuild <service>` asks the running service to do it.
`wait_caught_up()` lets a query read its own writes: it waits until the view
reflects every commit made before it was asked.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast
from uuid import UUID

import sqlalchemy as sa
from eventsourcing.persistence import Notification
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from services.runtime.follower import LogFollower
from services.runtime.leader import Lease
from services.runtime.logging import get_logger
from services.runtime.store import ServiceApplication, create_tables
from services.runtime.tracker import AggregateStates

log = get_logger("meetplane.projection")

positions_metadata = sa.MetaData()

view_positions = sa.Table(
    "view_positions",
    positions_metadata,
    sa.Column("view", sa.String(80), primary_key=True),
    sa.Column("position", sa.BigInteger, nullable=False),
)


def text_match(
    engine: sa.Engine, column: Any, value: str, mode: str, case_insensitive: bool
) -> sa.ColumnElement[bool]:
    """OpenVidu Meet's name filters: `exact`, `prefix`, `partial` or `regex` matching.

    A regular expression the database rejects fails when the query runs
    (`sa.exc.DBAPIError`); callers turn that into a 422 on the parameter.
    """
    if mode == "regex":
        if case_insensitive and engine.dialect.name == "sqlite":
            # SQLite's REGEXP is Python's re.search, which ignores SQL flags.
            return cast(sa.ColumnElement[bool], column.regexp_match(f"(?i){value}"))
        return cast(
            sa.ColumnElement[bool],
            column.regexp_match(value, flags="i" if case_insensitive else None),
        )
    if case_insensitive:
        column, value = sa.func.lower(column), value.lower()
    if engine.dialect.name == "sqlite":
        # SQLite's LIKE ignores case: compare substrings instead.
        if mode == "prefix":
            return cast(sa.ColumnElement[bool], sa.func.substr(column, 1, len(value)) == value)
        if mode == "partial":
            return cast(sa.ColumnElement[bool], sa.func.instr(column, value) > 0)
        return cast(sa.ColumnElement[bool], column == value)
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    if mode == "prefix":
        return cast(sa.ColumnElement[bool], column.like(f"{escaped}%", escape="\\"))
    if mode == "partial":
        return cast(sa.ColumnElement[bool], column.like(f"%{escaped}%", escape="\\"))
    return cast(sa.ColumnElement[bool], column == value)


class StaleViewPosition(Exception):
    """The view's recorded position is not where this batch started (a race was lost)."""


def upsert(
    engine: sa.Engine, table: sa.Table, keys: Sequence[str], newer_only: bool = False
) -> Any:
    """An INSERT ... ON CONFLICT UPDATE statement with bind parameters for every column.

    Built once per view and executed with a list of rows (executemany), so the
    statement is compiled once, not per row.  `newer_only` keeps a row at the
    higher aggregate `version`.
    """
    insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert
    stmt = insert(table)
    return stmt.on_conflict_do_update(
        index_elements=list(keys),
        set_={c.name: getattr(stmt.excluded, c.name) for c in table.columns if c.name not in keys},
        where=(table.c.version < stmt.excluded.version) if newer_only else None,
    )


class Prepared:
    """A statement compiled once for an engine's dialect, run on the DBAPI cursor.

    A projection writes a few rows per batch with the same statements: going
    through SQLAlchemy's execution context each time (cache lookup, parameter
    processing, result setup) costs several times the database's own work.  The
    compiled SQL, its parameter order and the columns' bind processors (JSON,
    booleans) are taken from SQLAlchemy once; each call only converts the values
    and hands them to the driver, inside the caller's SQLAlchemy transaction.
    """

    def __init__(self, engine: sa.Engine, statement: Any, keys: Sequence[str]) -> None:
        dialect = engine.dialect
        compiled = statement.compile(dialect=dialect, column_keys=list(keys))
        self.sql = str(compiled)
        self.positional = dialect.positional
        self.names: list[str] = list(compiled.positiontup or keys) if dialect.positional else []
        self.defaults: dict[str, Any] = dict(compiled.params)  # values bound in the statement
        self.processors: dict[str, Callable[[Any], Any]] = {}
        for name, bind in compiled.binds.items():
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                self.processors[name] = processor

    def _values(self, row: dict[str, Any]) -> Any:
        values = {**self.defaults, **row}
        processors = self.processors
        if self.positional:
            return tuple(
                processors[name](values[name]) if name in processors else values[name]
                for name in self.names
            )
        return {k: processors[k](v) if k in processors else v for k, v in values.items()}

    def run(self, conn: sa.Connection, rows: Sequence[dict[str, Any]]) -> int:
        """Execute for each row (executemany); returns the driver's row count."""
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            if len(rows) == 1:
                cursor.execute(self.sql, self._values(rows[0]))
            else:
                cursor.executemany(self.sql, [self._values(row) for row in rows])
            return int(cursor.rowcount)
        finally:
            cursor.close()


# Rows a view remembers per table as last written (the live ones are what matter).
WRITTEN_MAX = 4096


def _content(row: dict[str, Any]) -> dict[str, Any]:
    """A row without its aggregate `version`: what a reader sees of it."""
    return {k: v for k, v in row.items() if k != "version"}


class TableView:
    """Base of a projected read model: its tables, its position, apply and reset.

    Subclasses set `name`, `metadata` (their tables) and implement `rows(states)`
    returning {table: [row dicts]} for the latest states of a batch.
    """

    name: str = "view"
    metadata: sa.MetaData
    # Tables whose rows carry the aggregate `version` and only move forward.
    versioned: tuple[str, ...] = ()

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        create_tables(positions_metadata, engine)
        create_tables(self.metadata, engine)
        self._upserts = {
            table.name: Prepared(
                engine,
                upsert(
                    engine,
                    table,
                    [c.name for c in table.primary_key.columns],
                    newer_only=table.name in self.versioned,
                ),
                [c.name for c in table.columns],
            )
            for table in self.metadata.sorted_tables
        }
        self._where = view_positions.c.view == self.name
        # Built once: a statement built per batch costs its cache key every time.
        self._select_position = sa.select(view_positions.c.position).where(self._where)
        self._move_position = Prepared(
            engine,
            view_positions.update()
            .where(self._where, view_positions.c.position == sa.bindparam("start"))
            .values(position=sa.bindparam("end")),
            ["start", "end"],
        )
        self._create_position = self._insert_position()
        self._keys = {
            table.name: [c.name for c in table.primary_key.columns]
            for table in self.metadata.sorted_tables
        }
        # Each row as this view last wrote it, `version` aside, by table and key.
        # Only what this process committed since it last read the position: a read
        # of the position (start-up, a retry, a quiet poll) or a reset forgets it.
        self._written: dict[str, OrderedDict[tuple[Any, ...], dict[str, Any]]] = {}

    def rows(self, states: Sequence[Any]) -> dict[str, list[dict[str, Any]]]:
        """Rows per table for the latest states of the aggregates of one batch."""
        raise NotImplementedError

    def position(self) -> int | None:
        """The last notification id the view reflects (and forget what was written)."""
        self.forget_written()  # the view may have been reset or written elsewhere
        with self.engine.connect() as conn:
            return conn.execute(self._select_position).scalar_one_or_none()

    def changed(self, states: Sequence[Any]) -> dict[str, list[dict[str, Any]]]:
        """The rows of `states` that differ from what this view last wrote, version aside.

        A meeting's row says whether it is live and since when it is empty: a join
        changes neither, only the meeting's version, and writing the row (and the
        position with it) again was a transaction per join for nothing.
        """
        changed: dict[str, list[dict[str, Any]]] = {}
        for table, rows in self.rows(states).items():
            written: Mapping[tuple[Any, ...], dict[str, Any]] = self._written.get(table) or {}
            keys = self._keys[table]
            fresh = [
                row for row in rows if written.get(tuple(row[k] for k in keys)) != _content(row)
            ]
            if fresh:
                changed[table] = fresh
        return changed

    def write(self, rows: dict[str, list[dict[str, Any]]], start: int, end: int) -> None:
        """Write `rows` and move the position from `start` to `end`, atomically."""
        with self.engine.begin() as conn:
            if start:
                moved = self._move_position.run(conn, [{"start": start, "end": end}])
            else:
                inserted = conn.execute(
                    self._create_position, {"view": self.name, "position": end}
                ).first()
                moved = 1 if inserted is not None else 0
            if moved != 1:
                self.forget_written()
                raise StaleViewPosition(f"{self.name}: position is not {start}")
            for table, table_rows in rows.items():
                if table_rows:
                    self._upserts[table].run(conn, table_rows)
        for table, table_rows in rows.items():
            written = self._written.setdefault(table, OrderedDict())
            keys = self._keys[table]
            for row in table_rows:
                key = tuple(row[k] for k in keys)
                written[key] = _content(row)
                written.move_to_end(key)
            while len(written) > WRITTEN_MAX:
                written.popitem(last=False)

    def forget_written(self) -> None:
        """Write every row again from now on (a failed batch, a reset, a position read)."""
        self._written.clear()

    def _insert_position(self) -> Any:
        insert = pg_insert if self.engine.dialect.name == "postgresql" else sqlite_insert
        return (
            insert(view_positions)
            .on_conflict_do_nothing(index_elements=["view"])
            .returning(view_positions.c.view)
        )

    def reset(self) -> None:
        """Empty the view and forget its position (the projector replays the log)."""
        self.forget_written()
        with self.engine.begin() as conn:
            for table in reversed(self.metadata.sorted_tables):
                conn.execute(table.delete())
            conn.execute(view_positions.delete().where(self._where))


class Projection:
    """Keeps one view up to date with a service's log."""

    def __init__(
        self,
        app: ServiceApplication,
        view: TableView,
        *,
        kinds: tuple[type, ...] | None = None,
        lease: Lease | None = None,
        linger: float = 0.0,
    ) -> None:
        """`linger`: see `LogFollower._gather`; only for a view whose every read waits
        (`wait_caught_up`), since between commits it may be up to that much behind."""
        self.app = app
        self.view = view
        self.states = AggregateStates(app, kinds=kinds)
        self.follower = LogFollower(
            f"{app.name}.{view.name}",
            app.process_recorder,
            view.position,
            self._project,
            lease=lease,
            wants=self.states.concerns,
            record=self._record_position,
            linger=linger,
        )
        app.add_commit_listener(self.follower.offer)

    async def run(self) -> None:
        """Follow the log until stopped."""
        await self.follower.run()

    def _apply(self, start: int, notifications: Sequence[Notification]) -> bool:
        """Write the batch's rows and position; False (nothing written) if it has none."""
        latest: dict[UUID, Any] = {}
        try:
            for _, state in self.states.advance(notifications):  # of `kinds` only
                latest[state.id] = state
            rows = self.view.changed(list(latest.values()))
            if not rows:
                return False  # nothing to write: the follower records the position later
            self.view.write(rows, start, notifications[-1].id)
        except Exception:
            self.states.forget()
            self.view.forget_written()
            raise
        return True

    async def _project(self, start: int, notifications: Sequence[Notification]) -> bool:
        if not self.states.concerns(notifications):
            return False  # the follower records the position later
        return await self.follower.run_sync(self._apply, start, notifications)

    def _record_position(self, start: int, end: int) -> None:
        self.view.write({}, start, end)

    async def wait_caught_up(self, timeout: float = 5.0) -> bool:
        """Wait until the view reflects every commit made so far (read-your-writes)."""
        head = await self.follower.run_sync(self.app.process_recorder.max_notification_id)
        return await self.follower.wait_until(head or 0, timeout)

    async def rebuild(self, timeout: float = 600.0) -> int:
        """Empty the view and wait until the projector has replayed the log into it."""
        head = await asyncio.to_thread(self.app.process_recorder.max_notification_id) or 0
        await asyncio.to_thread(self.view.reset)
        self.follower.forget_position()
        self.follower.poke()
        deadline = time.monotonic() + timeout
        while (await asyncio.to_thread(self.view.position) or 0) < head:
            if time.monotonic() > deadline:
                raise TimeoutError(f"view {self.view.name} not rebuilt in {timeout:g}s")
            self.follower.poke()
            await asyncio.sleep(0.05)
        log.info("projection.rebuilt", view=self.view.name, position=head)
        return head
