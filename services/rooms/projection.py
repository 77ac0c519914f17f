"""The rooms list read model: a table projected from the room event log.

It records the last projected notification id in the same transaction as the
rows, so it resumes exactly where it stopped and is rebuilt from zero when its
table is missing or dropped (`RoomsView.reset`).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from eventsourcing.persistence import Notification
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from contracts.commands.rooms import ListRooms
from services.rooms.application import to_record
from services.rooms.domain import InvalidRoomRequest, Room
from services.runtime.store import create_tables

metadata = sa.MetaData()

# v2: owner and user access columns (a new table, so existing data dirs rebuild it).
rooms_view = sa.Table(
    "rooms_view_v2",
    metadata,
    sa.Column("room_id", sa.String(80), primary_key=True),
    sa.Column("room_name", sa.String(100), nullable=False),
    sa.Column("room_name_lower", sa.String(100), nullable=False, index=True),
    sa.Column("creation_date", sa.BigInteger, nullable=False, index=True),
    sa.Column("status", sa.String(20), nullable=False, index=True),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("deleted", sa.Boolean, nullable=False, default=False, index=True),
    sa.Column("owner", sa.String(100), nullable=True, index=True),
    sa.Column("user_access", sa.Boolean, nullable=False, default=False),
    sa.Column("record", sa.JSON, nullable=False),
)

view_position = sa.Table(
    "view_position",
    metadata,
    sa.Column("view", sa.String(80), primary_key=True),
    sa.Column("position", sa.BigInteger, nullable=False),
)

VIEW_NAME = "rooms_view_v2"


def _encode_token(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def _decode_token(token: str) -> list[Any]:
    try:
        padded = token + "=" * (-len(token) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError):
        raise InvalidRoomRequest("nextPageToken is not valid", field="nextPageToken") from None
    if not isinstance(values, list) or len(values) != 4:
        raise InvalidRoomRequest("nextPageToken is not valid", field="nextPageToken")
    return values


class RoomsView:
    """List/filter/paginate rooms from the projected table."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        create_tables(metadata, engine)

    def reset(self) -> None:
        """Drop the projection; the next catch-up rebuilds it from the event log."""
        with self.engine.begin() as conn:
            conn.execute(rooms_view.delete())
            conn.execute(view_position.delete().where(view_position.c.view == VIEW_NAME))

    def position(self) -> int | None:
        """Last notification id reflected in the table."""
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(view_position.c.position).where(view_position.c.view == VIEW_NAME)
            ).scalar_one_or_none()

    def apply(self, rooms: dict[Any, Room] | list[Room], position: int | None) -> None:
        """Upsert the given rooms and move the position (if given), atomically.

        Idempotent and order-proof: a row only ever moves to a higher aggregate
        version, deleted rooms stay as tombstones, and the position only moves
        forwards.  So the write-through of the replica that saved, the log
        follower of the leading replica and a rebuild can all write safely.
        """
        with self.engine.begin() as conn:
            for room in rooms.values() if isinstance(rooms, dict) else rooms:
                record = _record(room)
                values = {
                    "room_id": room.room_id,
                    "room_name": room.room_name,
                    "room_name_lower": room.room_name.lower(),
                    "creation_date": room.creation_date,
                    "status": record["status"],
                    "version": room.version,
                    "deleted": room.deleted,
                    "owner": room.owner,
                    "user_access": room.user_access,
                    "record": record,
                }
                conn.execute(self._upsert(rooms_view, values, ["room_id"], newer_only=True))
            if position is None:
                return
            conn.execute(
                self._upsert(view_position, {"view": VIEW_NAME, "position": position}, ["view"])
                if self._position_missing(conn)
                else view_position.update()
                .where(view_position.c.view == VIEW_NAME, view_position.c.position < position)
                .values(position=position)
            )

    def _position_missing(self, conn: sa.Connection) -> bool:
        return (
            conn.execute(
                sa.select(view_position.c.position).where(view_position.c.view == VIEW_NAME)
            ).first()
            is None
        )

    def _upsert(
        self, table: sa.Table, values: dict[str, Any], keys: list[str], newer_only: bool = False
    ) -> Any:
        insert = pg_insert if self.engine.dialect.name == "postgresql" else sqlite_insert
        stmt = insert(table).values(**values)
        return stmt.on_conflict_do_update(
            index_elements=keys,
            set_={k: getattr(stmt.excluded, k) for k in values if k not in keys},
            where=(table.c.version < stmt.excluded.version) if newer_only else None,
        )

    def list(self, query: ListRooms) -> tuple[list[dict[str, Any]], str | None]:
        """A page of rooms and the token of the next page."""
        column = (
            rooms_view.c.creation_date
            if query.sortField == "creationDate"
            else rooms_view.c.room_name_lower
        )
        descending = query.sortOrder == "desc"
        stmt = sa.select(rooms_view.c.record, column, rooms_view.c.room_id).where(
            rooms_view.c.deleted.is_(False)
        )
        if query.roomName:
            needle = (
                query.roomName.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            )
            stmt = stmt.where(rooms_view.c.room_name_lower.like(f"%{needle}%", escape="\\"))
        if query.status:
            stmt = stmt.where(rooms_view.c.status == query.status)
        stmt = _access_filters(stmt, query)
        if query.nextPageToken:
            field, order, last_value, last_id = _decode_token(query.nextPageToken)
            if (field, order) != (query.sortField, query.sortOrder):
                raise InvalidRoomRequest(
                    "nextPageToken belongs to another sort", field="nextPageToken"
                )
            key = sa.tuple_(column, rooms_view.c.room_id)
            bound = sa.tuple_(sa.literal(last_value), sa.literal(last_id))
            stmt = stmt.where(key < bound if descending else key > bound)
        order = (
            (column.desc(), rooms_view.c.room_id.desc())
            if descending
            else (column.asc(), rooms_view.c.room_id.asc())
        )
        stmt = stmt.order_by(*order).limit(query.maxItems + 1)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        page = rows[: query.maxItems]
        token = None
        if len(rows) > query.maxItems:
            last = page[-1]
            token = _encode_token([query.sortField, query.sortOrder, last[1], last[2]])
        return [row[0] for row in page], token


def _any_of(owner: str | None, room_ids: list[str] | None, user_access: bool | None) -> list[Any]:
    conditions: list[Any] = []
    if owner is not None:
        conditions.append(rooms_view.c.owner == owner)
    if room_ids is not None:
        conditions.append(rooms_view.c.room_id.in_(room_ids))
    if user_access is not None:
        conditions.append(rooms_view.c.user_access.is_(user_access))
    return conditions


def _access_filters(stmt: Any, query: ListRooms) -> Any:
    """v3.8.0's owner/member/userAccess filters (any of them), and a user's visibility."""
    wanted = _any_of(query.owner, query.memberRoomIds, query.userAccess)
    if wanted:
        stmt = stmt.where(sa.or_(*wanted))
    if query.accessibleTo is not None:
        visible = _any_of(query.accessibleTo.userId, query.accessibleTo.memberRoomIds, True)
        stmt = stmt.where(sa.or_(*visible))
    return stmt


def _record(room: Room) -> dict[str, Any]:
    return to_record(room).model_dump(mode="json")


class RoomsProjector:
    """Feeds notification batches into the view: the latest state of each touched room."""

    def __init__(self, view: RoomsView, load: Any) -> None:
        self.view = view
        self.load = load

    def project(self, notifications: Sequence[Notification]) -> None:
        """Project one batch (called from a worker thread)."""
        touched = {n.originator_id for n in notifications}
        rooms = {aggregate: self.load(aggregate) for aggregate in touched}
        self.view.apply(rooms, notifications[-1].id)
