"""What each webhook event carries: the recording or the room, as OpenVidu Meet sends it.

Recording events carry the recording as it was right after the change (the
recordings service puts that snapshot on its integration events).  Meeting
events carry the room; integration events hold no room secrets, so the room is
asked of the rooms service (its owner) once per event, given the status the
event implies, and kept, so every subscriber and retry sends the same bytes.
A room deleted before its `meetingEnded` was built is described from the last
room payload sent for it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from contracts.commands import rooms as room_cmd
from services.gateway.errors import ApiError
from services.gateway.rooms_view import ROOM_FIELDS, shape_room
from services.gateway.rpc import Rpc
from services.gateway.webhooks.store import WebhookStore
from services.gateway.webhooks.wire import WEBHOOK_EVENTS


def occurred_ms(envelope: dict[str, Any]) -> int:
    """The event's time in milliseconds since the epoch."""
    stamp = datetime.fromisoformat(str(envelope["occurred_at"]).replace("Z", "+00:00"))
    return int(stamp.timestamp() * 1000)


def room_of(envelope: dict[str, Any]) -> str | None:
    """The room an integration event is about."""
    room_id = (envelope.get("data") or {}).get("roomId")
    return str(room_id) if room_id is not None else None


def webhook_event(envelope: dict[str, Any]) -> str | None:
    """The OpenVidu Meet webhook event of an integration event, or None if not sent."""
    return WEBHOOK_EVENTS.get(str(envelope.get("type", "")))


def _with_status(room: dict[str, Any], event: str) -> dict[str, Any]:
    room = dict(room)
    if event == "meetingStarted":
        room["status"] = "active_meeting"
    elif room.get("status") == "closed" or room.get("meetingEndAction") == "close":
        # A `close` end action closes the room and is then spent.
        room["status"] = "closed"
        if room.get("meetingEndAction") == "close":
            room["meetingEndAction"] = "none"
    else:
        room["status"] = "open"
    return room


class PayloadBuilder:
    """Builds (once) and keeps the `{event, creationDate, data}` of each event."""

    def __init__(self, store: WebhookStore, rpc: Rpc, base_url: str) -> None:
        self.store = store
        self.rpc = rpc
        self.base_url = base_url

    async def payload(self, envelope: dict[str, Any]) -> dict[str, Any] | None:
        """The webhook payload of an integration event (None when none is sent)."""
        event = webhook_event(envelope)
        if event is None:
            return None
        key = f"event.{envelope['id']}"
        stored = await self.store.payload(key)
        if stored is not None:
            return stored
        data = (
            await self._room(envelope, event)
            if event.startswith("meeting")
            else self._recording(envelope)
        )
        built = {"event": event, "creationDate": occurred_ms(envelope), "data": data}
        return await self.store.keep_payload(key, built)

    @staticmethod
    def _recording(envelope: dict[str, Any]) -> dict[str, Any]:
        data = envelope.get("data") or {}
        recording = data.get("recording")
        if isinstance(recording, dict):
            return recording
        # An event published before recordings carried their snapshot.
        return {k: data[k] for k in ("recordingId", "roomId") if k in data}

    async def _room(self, envelope: dict[str, Any], event: str) -> dict[str, Any]:
        room_id = room_of(envelope) or ""
        cache = f"room.{room_id}"
        try:
            record = await self.rpc.retrying("rooms", "get", room_cmd.GetRoom(roomId=room_id))
        except ApiError as exc:
            if exc.status != 404:
                raise
            last = await self.store.payload(cache)
            return _with_status(last or {"roomId": room_id}, event)
        shaped = shape_room(record, self.base_url, None, {"config", "roles"})
        room = _with_status({k: shaped[k] for k in ROOM_FIELDS if k in shaped}, event)
        await self.store.put_payload(cache, room)
        return room
