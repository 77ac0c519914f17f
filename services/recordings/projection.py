"""Read models of the recordings service (SQLAlchemy Core, SQLite or PostgreSQL).

`recordings_view` (list/filter/paginate) is a projection of the service's own
log (services/runtime/projection.py), rebuilt by `meetplane views rebuild
recordings`; `room_config` and `live_meetings` are built from room and meeting
integration events by the service's consumer.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from services.recordings.domain import Recording, RecordingError
from services.runtime.projection import Prepared, TableView, text_match, upsert
from services.runtime.store import create_tables

metadata = sa.MetaData()
mirror_metadata = sa.MetaData()

recordings_view = sa.Table(
    "recordings_view",
    metadata,
    sa.Column("recording_id", sa.String(80), primary_key=True),
    sa.Column("room_id", sa.String(80), nullable=False, index=True),
    sa.Column("status", sa.String(20), nullable=False, index=True),
    sa.Column("start_date", sa.BigInteger, nullable=False, index=True),
    sa.Column("object_key", sa.String(300), nullable=False),
    sa.Column("deleted", sa.Boolean, nullable=False, index=True),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("record", sa.JSON, nullable=False),
)

room_config = sa.Table(
    "room_config",
    mirror_metadata,
    sa.Column("room_id", sa.String(80), primary_key=True),
    sa.Column("room_name", sa.String(100), nullable=False),
    sa.Column("config", sa.JSON, nullable=False),
    sa.Column("deleted", sa.Boolean, nullable=False),
)

# Whether the room's anonymous recording link is enabled (public share links need it).
room_recording_access = sa.Table(
    "room_recording_access",
    mirror_metadata,
    sa.Column("room_id", sa.String(80), primary_key=True),
    sa.Column("anonymous_enabled", sa.Boolean, nullable=False),
)

live_meetings = sa.Table(
    "live_meetings",
    mirror_metadata,
    sa.Column("room_id", sa.String(80), primary_key=True),
    sa.Column("meeting_id", sa.String(80), nullable=True),
)


@dataclass(frozen=True)
class RoomSeen:
    """RoomCreated / RoomUpdated: the room's name, config and recording-link switch."""

    state: dict[str, Any]

    def config_row(self) -> dict[str, Any]:
        return {
            "room_id": self.state["roomId"],
            "room_name": self.state["roomName"],
            "config": self.state["config"],
            "deleted": False,
        }

    def access_row(self) -> dict[str, Any]:
        anonymous = (self.state.get("anonymous") or {}).get("recording") or {}
        return {
            "room_id": self.state["roomId"],
            "anonymous_enabled": bool(anonymous.get("enabled")),
        }


@dataclass(frozen=True)
class RoomGone:
    """RoomDeleted: the room stays as a tombstone."""

    room_id: str


@dataclass(frozen=True)
class LiveMeeting:
    """MeetingStarted (its id) / MeetingEnded (None)."""

    room_id: str
    meeting_id: str | None


MirrorChange = RoomSeen | RoomGone | LiveMeeting


def recording_record(recording: Recording) -> dict[str, Any]:
    """OpenVidu Meet's recording shape (`None` = absent; the gateway drops them)."""
    return {
        "recordingId": recording.recording_id,
        "roomId": recording.room_id,
        "roomName": recording.room_name,
        "status": recording.status,
        "layout": recording.layout,
        "encoding": recording.encoding,
        "filename": recording.filename,
        "startDate": recording.start_date,
        "endDate": recording.end_date,
        "duration": recording.duration,
        "size": recording.size,
        "error": recording.error,
        "details": getattr(recording, "details", None),
    }


ACTIVE_STATUSES = ("starting", "active", "ending")


class _ActiveRecordings(Collector):
    """`meetplane_recordings_active`: recordings starting, active or ending (read model)."""

    def __init__(self) -> None:
        self.views: weakref.WeakSet[RecordingsView] = weakref.WeakSet()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "meetplane_recordings_active", "Recordings starting, active or ending"
        )
        counts = []
        for view in list(self.views):
            with contextlib.suppress(Exception):  # a database that is down: no sample
                counts.append(view.active_count())
        if counts:
            family.add_metric([], max(counts))  # every view of a process sees the same rows
        yield family


ACTIVE = _ActiveRecordings()
REGISTRY.register(ACTIVE)


class RecordingsView(TableView):
    """Reads and writes of the recordings read models."""

    name = "recordings_view"
    metadata = metadata
    versioned = ("recordings_view",)

    def __init__(self, engine: sa.Engine) -> None:
        super().__init__(engine)
        create_tables(mirror_metadata, engine)
        ACTIVE.views.add(self)

    def active_count(self) -> int:
        """How many recordings are starting, active or ending."""
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    sa.select(sa.func.count()).where(
                        recordings_view.c.status.in_(ACTIVE_STATUSES),
                        recordings_view.c.deleted.is_(False),
                    )
                ).scalar_one()
            )

    def rows(self, states: Sequence[Any]) -> dict[str, list[dict[str, Any]]]:
        """One row per recording (deleted ones stay as tombstones)."""
        return {
            "recordings_view": [
                {
                    "recording_id": r.recording_id,
                    "room_id": r.room_id,
                    "status": r.status,
                    "start_date": r.start_date,
                    "object_key": r.object_key,
                    "deleted": r.deleted,
                    "version": r.version,
                    "record": recording_record(r),
                }
                for r in states
            ]
        }

    def _sort_key(self, field: str) -> Any:
        """The sort expression: a column, or a JSON field of the stored record.

        Missing values sort as the lowest (-1 or the empty string) so keyset
        pagination compares plain values.
        """
        table = recordings_view
        if field == "startDate":
            return table.c.start_date
        value = table.c.record[field]
        if field == "roomName":
            return sa.func.coalesce(value.as_string(), "")
        return sa.func.coalesce(value.as_float(), -1.0)

    def list_page(
        self,
        room_id: str | None,
        status: str | None,
        max_items: int,
        token: str | None,
        sort_order: str = "desc",
        sort_field: str = "startDate",
        room_name: str | None = None,
        room_name_match_mode: str = "exact",
        room_name_case_insensitive: bool = False,
        room_ids: list[str] | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """A page of recordings, newest first by default, keyset-paginated on (sort key, id).

        `room_ids` (None: any room) narrows the page to the rooms the caller may see.
        """
        table = recordings_view
        key = self._sort_key(sort_field)
        stmt = sa.select(table.c.record, key, table.c.recording_id).where(
            table.c.deleted.is_(False)
        )
        if room_id:
            stmt = stmt.where(table.c.room_id == room_id)
        if room_ids is not None:
            stmt = stmt.where(table.c.room_id.in_(room_ids))
        if status:
            stmt = stmt.where(table.c.status == status)
        if room_name is not None:
            name = table.c.record["roomName"].as_string()
            stmt = stmt.where(
                text_match(
                    self.engine, name, room_name, room_name_match_mode, room_name_case_insensitive
                )
            )
        if token:
            try:
                last_key, last_id = json.loads(
                    base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
                )
                if not isinstance(last_id, str) or not isinstance(last_key, (int, float, str)):
                    raise TypeError("token")
            except (ValueError, TypeError):
                raise RecordingError(
                    "nextPageToken is not valid", error="invalid_request", field="nextPageToken"
                ) from None
            bound = sa.tuple_(sa.literal(last_key), sa.literal(last_id))
            pair = sa.tuple_(key, table.c.recording_id)
            stmt = stmt.where(pair < bound if sort_order == "desc" else pair > bound)
        order = (key, table.c.recording_id)
        stmt = stmt.order_by(*(c.desc() if sort_order == "desc" else c.asc() for c in order))
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(stmt.limit(max_items + 1)).all()
        except sa.exc.DBAPIError:
            if room_name_match_mode != "regex":
                raise
            # A pattern the database's regular expressions do not accept.
            raise RecordingError(
                "Invalid regular expression pattern", error="invalid_request", field="roomName"
            ) from None
        page = rows[:max_items]
        next_token = None
        if len(rows) > max_items:
            last = page[-1]
            next_token = (
                base64.urlsafe_b64encode(json.dumps([last[1], last[2]]).encode())
                .decode()
                .rstrip("=")
            )
        return [r[0] for r in page], next_token

    def stuck_candidates(self, started_before: int, statuses: tuple[str, ...]) -> list[str]:
        """Recordings still in `statuses` that started before a time (the aggregate decides)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(recordings_view.c.recording_id).where(
                    recordings_view.c.status.in_(statuses),
                    recordings_view.c.start_date < started_before,
                    recordings_view.c.deleted.is_(False),
                )
            ).all()
        return [r[0] for r in rows]

    def room_recording_ids(self, room_id: str) -> list[str]:
        """Ids of the room's (not deleted) recordings."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(recordings_view.c.recording_id).where(
                    recordings_view.c.room_id == room_id, recordings_view.c.deleted.is_(False)
                )
            ).all()
        return [r[0] for r in rows]

    def all_object_keys(self) -> dict[str, tuple[str, bool, str]]:
        """object key → (recording id, deleted, status), for the orphan sweep."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(
                    recordings_view.c.object_key,
                    recordings_view.c.recording_id,
                    recordings_view.c.deleted,
                    recordings_view.c.status,
                )
            ).all()
        return {r[0]: (r[1], bool(r[2]), r[3]) for r in rows}

    # ---- rooms and meetings, from events -----------------------------------------------

    def mirror(self, changes: Sequence[MirrorChange]) -> None:
        """Apply what a batch of consumed room/meeting events says, in order, in one transaction.

        The statements are built once per view (`upsert`), and a batch is one
        transaction: a consumer draining thousands of events writes them at the
        database's pace, not one transaction per event.  Every write is
        idempotent (an upsert or a tombstone), so a redelivered batch is harmless.
        """
        if not changes:
            return
        mirror = self._mirror
        with self.engine.begin() as conn:
            for change in changes:  # in order: a room seen, then gone, in one batch
                if isinstance(change, RoomSeen):
                    mirror["room"].run(conn, [change.config_row()])
                    mirror["access"].run(conn, [change.access_row()])
                elif isinstance(change, RoomGone):
                    mirror["deleted"].run(conn, [{"rid": change.room_id}])
                else:
                    mirror["live"].run(
                        conn, [{"room_id": change.room_id, "meeting_id": change.meeting_id}]
                    )

    @functools.cached_property
    def _mirror(self) -> dict[str, Prepared]:
        """The mirror's statements, compiled once and run on the driver (`Prepared`).

        Through SQLAlchemy's execution context they were a fifth of the recordings
        service's CPU per consumed room event.
        """

        def upsert_of(table: sa.Table) -> Prepared:
            statement = upsert(self.engine, table, ["room_id"])
            return Prepared(self.engine, statement, [c.name for c in table.columns])

        deleted = (
            room_config.update()
            .where(room_config.c.room_id == sa.bindparam("rid"))
            .values(deleted=True)
        )
        return {
            "room": upsert_of(room_config),
            "access": upsert_of(room_recording_access),
            "live": upsert_of(live_meetings),
            "deleted": Prepared(self.engine, deleted, ["rid"]),
        }

    def room(self, room_id: str) -> dict[str, Any] | None:
        """A room's name and config as the events said."""
        with self.engine.connect() as conn:
            row = (
                conn.execute(sa.select(room_config).where(room_config.c.room_id == room_id))
                .mappings()
                .first()
            )
        return dict(row) if row else None

    def anonymous_recording_enabled(self, room_id: str) -> bool:
        """Whether the room allows anonymous (public-link) access to its recordings."""
        with self.engine.connect() as conn:
            value = conn.execute(
                sa.select(room_recording_access.c.anonymous_enabled).where(
                    room_recording_access.c.room_id == room_id
                )
            ).scalar_one_or_none()
        return bool(value)

    def live_meeting(self, room_id: str) -> str | None:
        """The room's live meeting id, if any."""
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(live_meetings.c.meeting_id).where(live_meetings.c.room_id == room_id)
            ).scalar_one_or_none()
