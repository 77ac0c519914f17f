"""A room as `RoomCreated` carries it, for tests and benchmarks that publish or apply one."""

from __future__ import annotations

from typing import Any

from contracts.rooms import RoomState


def room_state(room_id: str, name: str, **fields: Any) -> dict[str, Any]:
    """A valid room (JSON form) with every link enabled; `fields` override or add."""
    link = {"enabled": True, "secretSha256": "0" * 64}
    return RoomState.model_validate(
        {
            "roomId": room_id,
            "roomName": name,
            "creationDate": 1_700_000_000_000,
            "config": {},
            "roles": {},
            "anonymous": {"moderator": link, "speaker": link, "recording": link},
            "status": "open",
            "meetingEndAction": "none",
            **fields,
        }
    ).model_dump(mode="json")
