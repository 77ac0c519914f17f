"""The rooms list read model: a table projected from the room event log.

A `TableView` (services/runtime/projection.py): it records the last projected
notification id in the same transaction as the rows, so it resumes exactly where
it stopped and is rebuilt from zero by `meetplane views rebuild rooms`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from contracts.commands.rooms import ListRooms
from services.rooms.application import to_record
from services.rooms.domain import InvalidRoomRequest, Room
from services.runtime.projection import TableView, text_match

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

VIEW_NAME = "rooms_view"


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


class RoomsView(TableView):
    """List/filter/paginate rooms from the projected table."""

    name = VIEW_NAME
    metadata = metadata
    versioned = (rooms_view.name,)

    def rows(self, states: Sequence[Any]) -> dict[str, list[dict[str, Any]]]:
        """One row per room: its latest state (deleted rooms stay as tombstones)."""
        rows = []
        for room in states:
            record = _record(room)
            rows.append(
                {
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
            )
        return {rooms_view.name: rows}

    @staticmethod
    def _sort_key(field: str) -> Any:
        """A sort column; rooms without an auto-deletion date sort lowest (-1)."""
        if field == "creationDate":
            return rooms_view.c.creation_date
        if field == "roomName":
            return rooms_view.c.room_name_lower
        return sa.func.coalesce(rooms_view.c.record["autoDeletionDate"].as_float(), -1.0)

    def list(self, query: ListRooms) -> tuple[list[dict[str, Any]], str | None]:
        """A page of rooms and the token of the next page."""
        column = self._sort_key(query.sortField)
        descending = query.sortOrder == "desc"
        stmt = sa.select(rooms_view.c.record, column, rooms_view.c.room_id).where(
            rooms_view.c.deleted.is_(False)
        )
        if query.roomName is not None:
            stmt = stmt.where(
                text_match(
                    self.engine,
                    rooms_view.c.room_name,
                    query.roomName,
                    query.roomNameMatchMode,
                    query.roomNameCaseInsensitive,
                )
            )
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
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(stmt).all()
        except sa.exc.DBAPIError:
            if query.roomNameMatchMode != "regex":
                raise
            # A pattern the database's regular expressions do not accept.
            raise InvalidRoomRequest(
                "Invalid regular expression pattern", field="roomName"
            ) from None
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
