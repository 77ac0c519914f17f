"""Live updates for one room as Server-Sent Events, fed from the JetStream stream.

`GET /room/{roomId}/events` (a page route) streams the room's integration events —
participant joined/left/evicted, role changed, recording started/stopped/ready, meeting
ended (with its reason), room closed or deleted — to the meeting view and to the
console's room page, so they update without polling.  Who may listen is decided by the
API: the browser's credential (the room link's member token cookie, or the console
session) must be allowed to read the room (`GET /rooms/{roomId}`).

Each listener has its own ordered JetStream consumer from the stream's end (`NEW`), on
the room, meeting and recording subjects; events of other rooms are skipped.  Only a few
plain fields of each event leave the gateway (no secrets, no room configuration).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from nats.js.api import ConsumerConfig, DeliverPolicy

from contracts.events import aggregate_subjects
from services.runtime.logging import get_logger

log = get_logger("meetplane.gateway.web.live")

AGGREGATES = ("room", "meeting", "recording")
FIELDS = (
    "roomId",
    "meetingId",
    "identity",
    "name",
    "role",
    "reason",
    "status",
    "recordingId",
    "endMeeting",
)
KEEP_ALIVE_SECONDS = 15.0
QUEUE_LIMIT = 1000


def _room_of(data: dict[str, Any]) -> str | None:
    room = data.get("roomId")
    if room is None and isinstance(data.get("room"), dict):
        room = data["room"].get("roomId")
    return room if isinstance(room, str) else None


def frame(event_type: str, data: dict[str, Any]) -> str:
    """One SSE message."""
    return f"event: {event_type}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


async def room_events(connection: Any, stream: str, room_id: str) -> AsyncIterator[str]:
    """The room's events as SSE messages, until the listener goes away."""
    queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue(QUEUE_LIMIT)

    async def on_message(msg: Any) -> None:
        try:
            envelope = json.loads(msg.data)
            data = envelope.get("data") or {}
            event_type = str(envelope["type"])
        except (ValueError, KeyError, AttributeError):
            return
        if _room_of(data) != room_id:
            return
        shown = {k: data[k] for k in FIELDS if k in data}
        shown["roomId"] = room_id
        try:
            queue.put_nowait((event_type, shown))
        except asyncio.QueueFull:
            log.warning("web.live_queue_full", room_id=room_id)

    js = connection.jetstream()
    subscriptions = []
    try:
        for aggregate in AGGREGATES:
            subscriptions.append(
                await js.subscribe(
                    aggregate_subjects(aggregate),
                    stream=stream,
                    ordered_consumer=True,
                    config=ConsumerConfig(deliver_policy=DeliverPolicy.NEW),
                    cb=on_message,
                )
            )
        yield "retry: 2000\n: connected\n\n"
        while True:
            try:
                event_type, data = await asyncio.wait_for(queue.get(), KEEP_ALIVE_SECONDS)
            except TimeoutError:
                yield ": keep-alive\n\n"
                continue
            yield frame(event_type, data)
    finally:
        for subscription in subscriptions:
            try:
                await subscription.unsubscribe()
            except Exception as exc:  # the connection may be closing
                log.info("web.live_unsubscribe_failed", error=str(exc))
