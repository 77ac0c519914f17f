"""Shape rooms the way OpenVidu Meet returns them: links, `fields` and `extraFields`."""

from __future__ import annotations

from typing import Any

from services.gateway.errors import ApiError

ROOM_FIELDS = {
    "roomId",
    "roomName",
    "creationDate",
    "autoDeletionDate",
    "autoDeletionPolicy",
    "config",
    "roles",
    "access",
    "status",
    "meetingEndAction",
    "moderatorUrl",
    "speakerUrl",
    "pendingDeletion",
    "owner",
}
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


def shape_room(
    record: dict[str, Any],
    base_url: str,
    fields: set[str] | None = None,
    extra: set[str] | None = None,
) -> dict[str, Any]:
    """The API representation of a room record."""
    links = room_links(base_url, record)
    room: dict[str, Any] = {
        "roomId": record["roomId"],
        "roomName": record["roomName"],
        "creationDate": record["creationDate"],
        "status": record["status"],
        "meetingEndAction": record["meetingEndAction"],
        "access": {
            "anonymous": links,
            "user": {
                "enabled": bool(record.get("userAccess")),
                "url": f"{base_url}/room/{record['roomId']}",
            },
        },
        "moderatorUrl": links["moderator"]["url"],
        "speakerUrl": links["speaker"]["url"],
    }
    if record.get("autoDeletionDate") is not None:
        room["autoDeletionDate"] = record["autoDeletionDate"]
        room["autoDeletionPolicy"] = record.get("autoDeletionPolicy")
    if record.get("owner"):
        room["owner"] = record["owner"]
    if record.get("pendingDeletion"):
        room["pendingDeletion"] = True
    wanted_extra = (extra or set()) | ((fields or set()) & EXTRA_FIELDS)
    for name in wanted_extra:
        room[name] = record[name]
    if fields:
        room = {k: v for k, v in room.items() if k in fields}
    return room
