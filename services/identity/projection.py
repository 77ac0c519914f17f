"""Identity read models: users, room members and API keys, projected from the identity log.

A `TableView` (services/runtime/projection.py): rows only move to a higher
aggregate version, deletions stay as tombstones, and the projected position is
stored with the rows; `meetplane views rebuild identity` replays the log.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from contracts.commands.identity import ListMembers, ListUsers
from contracts.identity import ApiKeyRecord
from services.identity.application import member_record, user_record
from services.identity.domain import ApiKey, InvalidIdentityRequest, RoomMember, User
from services.runtime.projection import TableView

metadata = sa.MetaData()

users_view = sa.Table(
    "users_view",
    metadata,
    sa.Column("user_id", sa.String(100), primary_key=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("name_lower", sa.String(100), nullable=False),
    sa.Column("role", sa.String(20), nullable=False, index=True),
    sa.Column("registration_date", sa.BigInteger, nullable=False, index=True),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("deleted", sa.Boolean, nullable=False),
    sa.Column("record", sa.JSON, nullable=False),
)

members_view = sa.Table(
    "members_view",
    metadata,
    sa.Column("room_id", sa.String(100), primary_key=True),
    sa.Column("member_id", sa.String(100), primary_key=True),
    sa.Column("user_id", sa.String(100), nullable=True, index=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("name_lower", sa.String(100), nullable=False),
    sa.Column("member_type", sa.String(20), nullable=False),
    sa.Column("base_role", sa.String(20), nullable=False),
    sa.Column("membership_date", sa.BigInteger, nullable=False),
    sa.Column("secret", sa.String(100), nullable=True),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("removed", sa.Boolean, nullable=False),
    sa.Column("record", sa.JSON, nullable=False),
)

api_keys_view = sa.Table(
    "api_keys_view",
    metadata,
    sa.Column("key_id", sa.String(40), primary_key=True),
    sa.Column("aggregate_id", sa.String(40), nullable=False),
    sa.Column("prefix", sa.String(40), nullable=False),
    sa.Column("creation_date", sa.BigInteger, nullable=False),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("revoked", sa.Boolean, nullable=False),
)

VIEW_NAME = "identity_views"


def _encode_token(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def _decode_token(token: str, field: str, order: str) -> list[Any]:
    try:
        values = json.loads(base64.urlsafe_b64decode((token + "=" * (-len(token) % 4)).encode()))
    except (ValueError, UnicodeDecodeError):
        values = None
    if not isinstance(values, list) or len(values) != 4 or values[:2] != [field, order]:
        raise InvalidIdentityRequest("nextPageToken is not valid", field="nextPageToken")
    return values


def _name_filter(
    stmt: Any, name: str | None, mode: str, insensitive: bool, plain: Any, lower: Any
) -> Any:
    if name is None:
        return stmt
    column = lower if insensitive else plain
    needle = name.lower() if insensitive else name
    if mode == "exact":
        return stmt.where(column == needle)
    if mode == "regex":
        try:
            re.compile(name)
        except re.error as exc:
            raise InvalidIdentityRequest(
                f"name is not a valid regex: {exc}", field="name"
            ) from None
        return stmt.where(plain.regexp_match(name, flags="i" if insensitive else None))
    escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    pattern = f"{escaped}%" if mode == "prefix" else f"%{escaped}%"
    return stmt.where(column.like(pattern, escape="\\"))


class IdentityView(TableView):
    """Lists of users, a room's members and API keys, from the projected tables."""

    name = VIEW_NAME
    metadata = metadata
    versioned = ("users_view", "members_view", "api_keys_view")

    def rows(self, states: Sequence[Any]) -> dict[str, list[dict[str, Any]]]:
        """Rows per table for the latest state of each aggregate of a batch."""
        rows: dict[str, list[dict[str, Any]]] = {}
        for state in states:
            row = self._row(state)
            if row is not None:
                table, values, _ = row
                rows.setdefault(table.name, []).append(values)
        return rows

    def _row(self, aggregate: Any) -> tuple[sa.Table, dict[str, Any], list[str]] | None:
        if isinstance(aggregate, User):
            return (
                users_view,
                {
                    "user_id": aggregate.user_id,
                    "name": aggregate.name,
                    "name_lower": aggregate.name.lower(),
                    "role": aggregate.role,
                    "registration_date": aggregate.registration_date,
                    "version": aggregate.version,
                    "deleted": aggregate.deleted,
                    "record": user_record(aggregate).model_dump(mode="json"),
                },
                ["user_id"],
            )
        if isinstance(aggregate, RoomMember):
            return (
                members_view,
                {
                    "room_id": aggregate.room_id,
                    "member_id": aggregate.member_id,
                    "user_id": aggregate.user_id,
                    "name": aggregate.name,
                    "name_lower": aggregate.name.lower(),
                    "member_type": aggregate.member_type,
                    "base_role": aggregate.base_role,
                    "membership_date": aggregate.membership_date,
                    "secret": aggregate.secret,
                    "version": aggregate.version,
                    "removed": aggregate.removed,
                    "record": member_record(aggregate).model_dump(mode="json"),
                },
                ["room_id", "member_id"],
            )
        if isinstance(aggregate, ApiKey):
            return (
                api_keys_view,
                {
                    "key_id": aggregate.key_id,
                    "aggregate_id": str(aggregate.id),
                    "prefix": aggregate.prefix,
                    "creation_date": aggregate.creation_date,
                    "version": aggregate.version,
                    "revoked": aggregate.revoked,
                },
                ["key_id"],
            )
        return None

    # ---- queries -------------------------------------------------------------------------

    def list_users(self, query: ListUsers) -> tuple[list[dict[str, Any]], str | None]:
        """A page of live users and the next page's token."""
        column = users_view.c.registration_date
        if query.sortField == "name":
            column = users_view.c.name_lower
        stmt = sa.select(users_view.c.record, column, users_view.c.user_id).where(
            users_view.c.deleted.is_(False)
        )
        if query.userId:
            stmt = stmt.where(users_view.c.user_id == query.userId)
        if query.role:
            stmt = stmt.where(users_view.c.role == query.role.value)
        stmt = _name_filter(
            stmt,
            query.name,
            query.nameMatchMode,
            query.nameCaseInsensitive,
            users_view.c.name,
            users_view.c.name_lower,
        )
        return self._page(stmt, column, users_view.c.user_id, query)

    def list_members(self, query: ListMembers) -> tuple[list[dict[str, Any]], str | None]:
        """A page of a room's present members and the next page's token."""
        column = members_view.c.membership_date
        if query.sortField == "name":
            column = members_view.c.name_lower
        stmt = sa.select(members_view.c.record, column, members_view.c.member_id).where(
            members_view.c.room_id == query.roomId, members_view.c.removed.is_(False)
        )
        if query.baseRole:
            stmt = stmt.where(members_view.c.base_role == query.baseRole.value)
        if query.type:
            stmt = stmt.where(members_view.c.member_type == query.type)
        stmt = _name_filter(
            stmt,
            query.name,
            query.nameMatchMode,
            query.nameCaseInsensitive,
            members_view.c.name,
            members_view.c.name_lower,
        )
        return self._page(stmt, column, members_view.c.member_id, query)

    def _page(
        self, stmt: Any, column: Any, key: Any, query: ListUsers | ListMembers
    ) -> tuple[list[dict[str, Any]], str | None]:
        descending = query.sortOrder == "desc"
        if query.nextPageToken:
            _, _, last_value, last_id = _decode_token(
                query.nextPageToken, query.sortField, query.sortOrder
            )
            bound = sa.tuple_(sa.literal(last_value), sa.literal(last_id))
            pair = sa.tuple_(column, key)
            stmt = stmt.where(pair < bound if descending else pair > bound)
        order = (column.desc(), key.desc()) if descending else (column.asc(), key.asc())
        with self.engine.connect() as conn:
            rows = conn.execute(stmt.order_by(*order).limit(query.maxItems + 1)).all()
        page = rows[: query.maxItems]
        token = None
        if len(rows) > query.maxItems:
            token = _encode_token([query.sortField, query.sortOrder, page[-1][1], page[-1][2]])
        return [row[0] for row in page], token

    def member_by_secret(self, room_id: str, secret: str) -> dict[str, Any] | None:
        """The present identified guest of the room with this access secret."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(members_view.c.record).where(
                    members_view.c.room_id == room_id,
                    members_view.c.secret == secret,
                    members_view.c.removed.is_(False),
                )
            ).first()
        return None if row is None else dict(row[0])

    def rooms_of_user(self, user_id: str) -> list[str]:
        """Rooms the user is a present member of."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(members_view.c.room_id)
                .where(members_view.c.user_id == user_id, members_view.c.removed.is_(False))
                .order_by(members_view.c.room_id)
            ).all()
        return [row[0] for row in rows]

    def memberships_of_user(self, user_id: str) -> list[dict[str, Any]]:
        """The user's present member records, one per room."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(members_view.c.record)
                .where(members_view.c.user_id == user_id, members_view.c.removed.is_(False))
                .order_by(members_view.c.room_id)
            ).all()
        return [dict(row[0]) for row in rows]

    def members_of_room(self, room_id: str) -> list[str]:
        """Present member ids of a room."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(members_view.c.member_id).where(
                    members_view.c.room_id == room_id, members_view.c.removed.is_(False)
                )
            ).all()
        return [row[0] for row in rows]

    def api_keys(self) -> list[ApiKeyRecord]:
        """Live API keys, newest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(
                    api_keys_view.c.key_id, api_keys_view.c.prefix, api_keys_view.c.creation_date
                )
                .where(api_keys_view.c.revoked.is_(False))
                .order_by(api_keys_view.c.creation_date.desc(), api_keys_view.c.key_id)
            ).all()
        return [ApiKeyRecord(keyId=r[0], prefix=r[1], creationDate=r[2]) for r in rows]

    def api_key_aggregate(self, key_id: str) -> str | None:
        """The aggregate id of a live key."""
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(api_keys_view.c.aggregate_id).where(
                    api_keys_view.c.key_id == key_id, api_keys_view.c.revoked.is_(False)
                )
            ).scalar_one_or_none()
