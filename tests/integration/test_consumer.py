"""The idempotent durable consumer on a real nats-server."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from contracts.events import RoomStatusChanged, make_envelope, subject_of
from services.runtime.consumer import Consumed, durable_consumer
from services.runtime.nats import make_broker
from services.runtime.service import ServiceParts
from services.runtime.settings import RuntimeSettings
from services.runtime.store import ServiceApplication, eventsourcing_env
from tests.support.services import running, wait_for


class Tracker(ServiceApplication):
    name = "consumertest"


def envelope(n: int) -> bytes:
    data = RoomStatusChanged(roomId=f"room-{n}", status="closed")
    env = make_envelope(uuid.uuid4(), data, source="rooms", subject_id=f"room-{n}")
    return env.model_dump_json().encode()


async def test_failing_handler_is_retried_and_never_overtaken(
    settings_factory: Any, client_broker: Any, tmp_path: Path
) -> None:
    settings: RuntimeSettings = settings_factory()
    tracker = Tracker(env=eventsourcing_env(settings, "consumertest"))
    handled: list[str] = []
    failures = {"room-1": 2}

    async def handler(consumed: Consumed) -> None:
        room = consumed.envelope.data["roomId"]
        if failures.get(room, 0) > 0:
            failures[room] -= 1
            raise RuntimeError("transient failure")
        handled.append(room)

    broker = make_broker(settings, "consumer-test")
    durable_consumer(
        broker,
        name="test-consumer",
        subject="meetplane.evt.room.*",
        handler=handler,
        processed=tracker,
        max_retry_delay=0.2,
    )
    js = client_broker._connection.jetstream()
    async with running(ServiceParts(name="test", broker=broker), settings):
        for n in (1, 2, 3):
            await js.publish(subject_of("RoomStatusChanged"), envelope(n))
        await wait_for(lambda: len(handled) == 3)
    assert handled == ["room-1", "room-2", "room-3"]

    # A restart redelivers nothing already processed, and a replay is skipped.
    broker = make_broker(settings, "consumer-test")
    durable_consumer(
        broker,
        name="test-consumer",
        subject="meetplane.evt.room.*",
        handler=handler,
        processed=tracker,
    )
    async with running(ServiceParts(name="test", broker=broker), settings):
        await js.publish(subject_of("RoomStatusChanged"), envelope(4))
        await wait_for(lambda: len(handled) == 4)
    assert handled == ["room-1", "room-2", "room-3", "room-4"]
