"""The meetings service's own read models (SQLAlchemy Core, SQLite or PostgreSQL).

`room_access`: what it must know of rooms to admit a participant, built from
room integration events (never from the rooms database).  `live_meetings`:
live meetings and since when they are empty, written through on every save of
a Meeting (rows only move to higher aggregate versions).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from services.meetings.domain import Meeting
from services.runtime.store import create_tables

metadata = sa.MetaData()

room_access = sa.Table(
    "room_access",
    metadata,
    sa.Column("room_id", sa.String(80), primary_key=True),
    sa.Column("room_name", sa.String(100), nullable=False),
    sa.Column("closed", sa.Boolean, nullable=False),
    sa.Column("deleted", sa.Boolean, nullable=False),
    sa.Column("anonymous", sa.JSON, nullable=False),
    sa.Column("roles", sa.JSON, nullable=False),
    sa.Column("meeting_end_action", sa.String(20), nullable=False),
)

live_meetings = sa.Table(
    "live_meetings",
    metadata,
    sa.Column("meeting_id", sa.String(80), primary_key=True),
    sa.Column("room_id", sa.String(80), nullable=False, index=True),
    sa.Column("active", sa.Boolean, nullable=False, index=True),
    sa.Column("empty_since", sa.BigInteger, nullable=True, index=True),
    sa.Column("version", sa.BigInteger, nullable=False),
)


class MeetingsView:
    """Reads and writes of the meetings service's read models."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        create_tables(metadata, engine)

    def _upsert(self, table: sa.Table, values: dict[str, Any], key: str, where: Any = None) -> Any:
        insert = pg_insert if self.engine.dialect.name == "postgresql" else sqlite_insert
        stmt = insert(table).values(**values)
        return stmt.on_conflict_do_update(
            index_elements=[key],
            set_={k: getattr(stmt.excluded, k) for k in values if k != key},
            where=where(stmt) if where else None,
        )

    # ---- rooms -------------------------------------------------------------------------

    def put_room(self, state: dict[str, Any]) -> None:
        """Store a room's state from RoomCreated/RoomUpdated (idempotent)."""
        values = {
            "room_id": state["roomId"],
            "room_name": state["roomName"],
            "closed": state["status"] == "closed" or bool(state.get("pendingDeletion")),
            "deleted": False,
            "anonymous": state["anonymous"],
            "roles": state["roles"],
            "meeting_end_action": state["meetingEndAction"],
        }
        with self.engine.begin() as conn:
            conn.execute(self._upsert(room_access, values, "room_id"))

    def set_room_closed(self, room_id: str, closed: bool) -> None:
        """RoomStatusChanged."""
        with self.engine.begin() as conn:
            conn.execute(
                room_access.update().where(room_access.c.room_id == room_id).values(closed=closed)
            )

    def mark_room_deleted(self, room_id: str) -> None:
        """RoomDeleted: a tombstone, so a late RoomUpdated cannot resurrect it."""
        with self.engine.begin() as conn:
            conn.execute(
                room_access.update().where(room_access.c.room_id == room_id).values(deleted=True)
            )

    def room(self, room_id: str) -> dict[str, Any] | None:
        """A room's access data, or None if no event about it arrived yet."""
        with self.engine.connect() as conn:
            row = (
                conn.execute(sa.select(room_access).where(room_access.c.room_id == room_id))
                .mappings()
                .first()
            )
        return dict(row) if row else None

    # ---- live meetings -------------------------------------------------------------------

    def put_meeting(self, meeting: Meeting) -> None:
        """Write-through of a saved meeting (only newer versions replace a row)."""
        values = {
            "meeting_id": meeting.meeting_id,
            "room_id": meeting.room_id,
            "active": meeting.active,
            "empty_since": meeting.empty_since if meeting.active else None,
            "version": meeting.version,
        }
        with self.engine.begin() as conn:
            conn.execute(
                self._upsert(
                    live_meetings,
                    values,
                    "meeting_id",
                    where=lambda stmt: live_meetings.c.version < stmt.excluded.version,
                )
            )

    def idle_meetings(self, empty_before: int, limit: int = 500) -> list[tuple[str, str]]:
        """(room_id, meeting_id) of live meetings empty since before `empty_before`."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(live_meetings.c.room_id, live_meetings.c.meeting_id)
                .where(
                    live_meetings.c.active.is_(True),
                    live_meetings.c.empty_since.is_not(None),
                    live_meetings.c.empty_since <= empty_before,
                )
                .order_by(live_meetings.c.empty_since)
                .limit(limit)
            ).all()
        return [(r[0], r[1]) for r in rows]
