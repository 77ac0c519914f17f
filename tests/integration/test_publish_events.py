"""Publishing integration events: every batch on one JetStream context per connection.

nats-py's JetStream context subscribes a reply inbox on its first asynchronous
publish and keeps it. The outbox made a context per batch, so every batch it
ever published left one more subscription on its connection and on the server.
"""

from __future__ import annotations

import uuid

from faststream.nats import NatsBroker

from contracts.events import RoomStatusChanged, make_envelope
from contracts.streams import STREAM_NAME
from services.runtime.nats import ensure_stream, publish_events


def envelope(room_id: str) -> object:
    return make_envelope(
        uuid.uuid4(),
        RoomStatusChanged(roomId=room_id, status="closed"),
        source="rooms",
        subject_id=room_id,
    )


async def test_batches_share_one_reply_subscription(client_broker: NatsBroker) -> None:
    connection = client_broker._connection
    assert connection is not None
    await ensure_stream(connection, name=STREAM_NAME)
    acks = await publish_events(client_broker, [envelope("r-0")], STREAM_NAME)
    subscriptions = len(connection._subs)
    for i in range(1, 20):
        acks += await publish_events(
            client_broker, [envelope(f"r-{i}"), envelope(f"s-{i}")], STREAM_NAME
        )
    assert len(connection._subs) == subscriptions
    assert [ack.seq for ack in acks] == list(range(1, 40))
    assert not any(ack.duplicate for ack in acks)
