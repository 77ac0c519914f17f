"""The meetings service's read model: live meetings and since when they are empty.

A projection of the service's own log (services/runtime/projection.py), used by
the empty-meeting sweep; rebuilt by `meetplane views rebuild meetings`.  What
this service knows of rooms is not a table but the `KnownRoom` aggregates,
recorded from room events into the same log.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from services.runtime.projection import TableView

metadata = sa.MetaData()

live_meetings = sa.Table(
    "live_meetings",
    metadata,
    sa.Column("meeting_id", sa.String(80), primary_key=True),
    sa.Column("room_id", sa.String(80), nullable=False, index=True),
    sa.Column("active", sa.Boolean, nullable=False, index=True),
    sa.Column("empty_since", sa.BigInteger, nullable=True, index=True),
    sa.Column("version", sa.BigInteger, nullable=False),
)


class MeetingsView(TableView):
    """Live meetings, for the empty-meeting sweep."""

    name = "live_meetings"
    metadata = metadata
    versioned = ("live_meetings",)

    def rows(self, states: Sequence[Any]) -> dict[str, list[dict[str, Any]]]:
        """One row per meeting (ended ones stay, inactive)."""
        return {
            "live_meetings": [
                {
                    "meeting_id": m.meeting_id,
                    "room_id": m.room_id,
                    "active": m.active,
                    "empty_since": m.empty_since if m.active else None,
                    "version": m.version,
                }
                for m in states
            ]
        }

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
