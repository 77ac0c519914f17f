"""Shape rooms the way OpenVidu Meet returns them: links, `fields` and `extraFields`."""

from __future__ import annotations

from typing import Any

from services.gateway.errors import ApiError

# OpenVidu Meet v3.8.0's MeetRoom, in its order (webhook payloads keep it).
ROOM_FIELDS = (
    "roomId",
    "roomName",
    "owner",
    "creationDate",
    "autoDeletionDate",
    "autoDeletionPolicy",
    "config",
    "roles",
    "access",
    "status",
    "rolesUpdatedAt",
    "meetingEndAction",
)
EXTRA_FIELDS = {"config", "roles"}


def parse_field_list(raw: str | None, allowed: set[str], name: str) -> set[str] | None:
    """A comma-separated field list; unknown names are a 422 naming the parameter."""
    if raw is None or not raw.strip():
        return None
    names = {part.strip() for part in raw.split(",") if part.strip()}
    unknown = sorted(names - allowed)
    if unknown:
        raise ApiError.invalid(name, f"unknown field(s): {', '.join(unknown)}")
    return names


def room_links(base_url: str, record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Anonymous access links built from the room's secrets."""
    room_id = record["roomId"]
    links: dict[str, dict[str, Any]] = {}
    for role, link in record["anonymous"].items():
        path = f"/room/{room_id}/recordings" if role == "recording" else f"/room/{room_id}"
        links[role] = {
            "enabled": link["enabled"],
            "url": f"{base_url}{path}?secret={link['secret']}",
        }
    return links


def selection(
    fields: str | None, extra: str | None, x_fields: str | None, x_extra: str | None
) -> tuple[set[str] | None, set[str]]:
    """v3.8.0: the query parameter and the header combine (their union)."""
    chosen = [
        parse_field_list(raw, set(ROOM_FIELDS), name)
        for raw, name in ((fields, "fields"), (x_fields, "X-Fields"))
    ]
    picked = [c for c in chosen if c is not None]
    wanted = set().union(*picked) if picked else None
    extras = [
        parse_field_list(raw, EXTRA_FIELDS, name)
        for raw, name in ((extra, "extraFields"), (x_extra, "X-ExtraFields"))
    ]
    return wanted, set().union(*(e for e in extras if e is not None))


def shape_room(
    record: dict[str, Any],
    base_url: str,
    fields: set[str] | None = None,
    extra: set[str] | None = None,
    *,
    meta: bool = True,
) -> dict[str, Any]:
    """The API representation of a room record, as v3.8.0 returns it.

    `config` and `roles` are extra fields: present only when asked for, and then
    whatever `fields` says.  `_extraFields` names them (left out inside lists, where the
    list carries it once).
    """
    links = room_links(base_url, record)
    room: dict[str, Any] = {
        "roomId": record["roomId"],
        "roomName": record["roomName"],
        "owner": record.get("owner"),
        "creationDate": record["creationDate"],
        "autoDeletionDate": record.get("autoDeletionDate"),
        "autoDeletionPolicy": record.get("autoDeletionPolicy"),
        "access": {
            "anonymous": links,
            "user": {
                "enabled": bool(record.get("userAccess")),
                "url": f"{base_url}/room/{record['roomId']}",
            },
        },
        "status": record["status"],
        "rolesUpdatedAt": record.get("rolesUpdatedAt") or record["creationDate"],
        "meetingEndAction": record["meetingEndAction"],
    }
    room = {k: v for k, v in room.items() if v is not None}
    if fields:
        room = {k: v for k, v in room.items() if k in fields}
    for name in sorted(extra or ()):
        room[name] = record[name]
    if meta:
        room["_extraFields"] = sorted(EXTRA_FIELDS)
    return room
