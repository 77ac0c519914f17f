"""The batched, ordered durable consumer and its dead-letter stream, on a real nats-server."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.persistence import OperationalError, Tracking
from prometheus_client import REGISTRY

from contracts.events import RoomStatusChanged, make_envelope, subject_of
from services.runtime.consumer import Consumed, DurableConsumer
from services.runtime.dlq import DeadLetters
from services.runtime.nats import dlq_stream_name, make_broker
from services.runtime.pull import PullStream
from services.runtime.retry import Patience
from services.runtime.service import ServiceParts
from services.runtime.settings import RuntimeSettings
from services.runtime.store import ServiceApplication, eventsourcing_env, make_lease
from tests.support.services import running, wait_for

SUBJECT = subject_of("RoomStatusChanged")
FAST = Patience(attempts=3, transient_seconds=30.0, initial_delay=0.01, max_delay=0.05)


class Tracker(ServiceApplication):
    name = "consumertest"


def envelope(room: str, n: int) -> bytes:
    data = RoomStatusChanged(roomId=room, status="closed", reason=f"n{n}")
    env = make_envelope(uuid.uuid4(), data, source="rooms", subject_id=room)
    return env.model_dump_json().encode()


class Recorder:
    """A service's `process`: remembers what it applied, fails on demand, records the position."""

    def __init__(self, app: Tracker) -> None:
        self.app = app
        self.applied: list[tuple[str, str]] = []
        self.batches: list[int] = []
        self.poison: set[str] = set()  # events (by their `reason`) that always fail
        self.transient = 0  # next N calls fail with an infrastructure error
        self.no_op: set[str] = set()  # events (by their `reason`) that mean nothing
        self.recorded: list[int] = []  # positions written

    async def __call__(self, batch: Sequence[Consumed], position: Tracking) -> bool:
        import asyncio

        if self.transient:
            self.transient -= 1
            raise OperationalError("database is locked")
        for consumed in batch:
            if consumed.envelope.data["reason"] in self.poison:
                raise ValueError(f"cannot handle {consumed.envelope.data['reason']}")
        self.batches.append(len(batch))
        self.applied += [(c.envelope.data["roomId"], c.envelope.data["reason"]) for c in batch]
        if batch and all(c.envelope.data["reason"] in self.no_op for c in batch):
            return False  # wrote nothing, the position included
        await asyncio.to_thread(self.app.save_tracked, tracking=position)
        self.recorded.append(position.notification_id)
        return True


def consumer(
    settings: RuntimeSettings, recorder: Recorder, *, lease: bool = False, linger: float = 0.0
) -> tuple[ServiceParts, DurableConsumer]:
    broker = make_broker(settings, "consumer-test")
    durable = DurableConsumer(
        broker,
        service="consumertest",
        name="test-consumer",
        subjects=[SUBJECT],
        process=recorder,
        position=lambda: recorder.app.position_of("test-consumer"),
        lease=make_lease(settings, "consumertest", "consumer") if lease else None,
        patience=FAST,
        fetch_timeout=0.2,
        linger=linger,
    )
    parts = ServiceParts(name="consumertest", broker=broker)
    parts.background.append(durable.run)
    parts.stoppers.append(durable.stop)
    return parts, durable


@pytest.fixture
def app(settings_factory: Any) -> Tracker:
    settings: RuntimeSettings = settings_factory()
    return Tracker(env=eventsourcing_env(settings, "consumertest"))


async def publish(client_broker: Any, events: list[tuple[str, int]]) -> list[int]:
    js = client_broker._connection.jetstream()
    return [(await js.publish(SUBJECT, envelope(room, n))).seq for room, n in events]


async def test_batches_apply_in_stream_order_and_resume_after_restart(
    settings_factory: Any, client_broker: Any, app: Tracker
) -> None:
    settings: RuntimeSettings = settings_factory()
    recorder = Recorder(app)
    events = [(f"room-{n % 7}", n) for n in range(300)]
    seqs = await publish(client_broker, events)
    parts, _ = consumer(settings, recorder)
    async with running(parts, settings):
        await wait_for(lambda: len(recorder.applied) == 300)
    assert recorder.applied == [(room, f"n{n}") for room, n in events]
    assert max(recorder.batches) > 1, "messages already on the stream come in batches"
    assert app.position_of("test-consumer") == seqs[-1]

    # A restart redelivers nothing already processed.
    more = [("room-x", 1000), ("room-y", 1001)]
    await publish(client_broker, more)
    parts, _ = consumer(settings, recorder)
    async with running(parts, settings):
        await wait_for(lambda: len(recorder.applied) == 302)
    assert recorder.applied[300:] == [("room-x", "n1000"), ("room-y", "n1001")]


async def test_poison_message_is_parked_and_other_aggregates_go_on(
    settings_factory: Any, client_broker: Any, app: Tracker
) -> None:
    settings: RuntimeSettings = settings_factory()
    recorder = Recorder(app)
    recorder.poison = {"n2"}  # only this event of room-bad is a problem
    parts, durable = consumer(settings, recorder)
    parked_total = {"consumer": "test-consumer", "outcome": "parked"}
    parked_before = REGISTRY.get_sample_value("meetplane_consumer_events_total", parked_total) or 0
    async with running(parts, settings):
        await publish(client_broker, [("room-ok", 1), ("room-bad", 2), ("room-ok", 3)])
        await wait_for(lambda: len(recorder.applied) == 2)
        # A later event of the parked aggregate is held behind it, not applied out of order.
        await publish(client_broker, [("room-bad", 4), ("room-ok", 5)])
        await wait_for(lambda: len(recorder.applied) == 3)
        assert recorder.applied == [("room-ok", "n1"), ("room-ok", "n3"), ("room-ok", "n5")]

        parked = await durable.parked()
        assert [(p.subject_id, p.reason) for p in parked] == [
            ("room-bad", "failed"),
            ("room-bad", "held"),
        ]
        assert parked[0].consumer == "test-consumer" and parked[0].service == "consumertest"
        assert parked[0].attempts == FAST.attempts
        assert "cannot handle n2" in parked[0].error
        # What the dead-letter alert and dashboard read (deploy/k8s/monitoring).
        parked_now = REGISTRY.get_sample_value("meetplane_consumer_events_total", parked_total)
        assert parked_now == parked_before + 2
        gauge = {"consumer": "test-consumer"}
        assert REGISTRY.get_sample_value("meetplane_consumer_parked_messages", gauge) == 2

        # Once the defect is fixed, a retry applies the parked events in order and
        # releases the aggregate: its next event is applied directly.
        recorder.poison = set()
        result = await durable.retry_parked(parked[0].seq)
        assert result == {"retried": 2, "failed": []}
        assert recorder.applied[-2:] == [("room-bad", "n2"), ("room-bad", "n4")]
        assert await durable.parked() == []
        assert REGISTRY.get_sample_value("meetplane_consumer_parked_messages", gauge) == 0
        await publish(client_broker, [("room-bad", 6)])
        await wait_for(lambda: recorder.applied[-1] == ("room-bad", "n6"))


async def test_dropped_messages_are_gone_and_release_the_aggregate(
    settings_factory: Any, client_broker: Any, app: Tracker
) -> None:
    settings: RuntimeSettings = settings_factory()
    recorder = Recorder(app)
    recorder.poison = {"n1"}
    parts, durable = consumer(settings, recorder)
    async with running(parts, settings):
        await publish(client_broker, [("room-bad", 1)])
        await wait_for(lambda: durable.parked())
        recorder.poison = set()
        assert await durable.drop_parked() == {"dropped": 1}
        assert await durable.parked() == []
        await publish(client_broker, [("room-bad", 2)])
        await wait_for(lambda: recorder.applied == [("room-bad", "n2")])


async def test_transient_failures_are_retried_in_place_not_parked(
    settings_factory: Any, client_broker: Any, app: Tracker
) -> None:
    settings: RuntimeSettings = settings_factory()
    recorder = Recorder(app)
    recorder.transient = FAST.attempts + 2  # more than a defect would be allowed
    parts, durable = consumer(settings, recorder)
    async with running(parts, settings):
        await publish(client_broker, [("room-a", 1), ("room-b", 2)])
        await wait_for(lambda: len(recorder.applied) == 2)
        assert await durable.parked() == []
    assert recorder.applied == [("room-a", "n1"), ("room-b", "n2")]


async def test_an_invalid_envelope_is_parked(
    settings_factory: Any, client_broker: Any, app: Tracker
) -> None:
    settings: RuntimeSettings = settings_factory()
    recorder = Recorder(app)
    parts, durable = consumer(settings, recorder)
    js = client_broker._connection.jetstream()
    async with running(parts, settings):
        await js.publish(SUBJECT, b'{"not": "an envelope"}')
        await publish(client_broker, [("room-a", 1)])
        await wait_for(lambda: recorder.applied == [("room-a", "n1")])
        parked = await durable.parked()
        assert [p.reason for p in parked] == ["invalid"]
        assert "invalid envelope" in parked[0].error


async def test_caught_up_waits_until_published_events_are_processed(
    settings_factory: Any, client_broker: Any, app: Tracker
) -> None:
    settings: RuntimeSettings = settings_factory()
    recorder = Recorder(app)
    parts, durable = consumer(settings, recorder)
    async with running(parts, settings):
        await publish(client_broker, [(f"room-{n}", n) for n in range(40)])
        assert await durable.caught_up(timeout=10.0)
        assert len(recorder.applied) == 40  # no waiting on a condition: caught_up is the wait


async def test_a_trickle_of_events_is_handled_in_one_batch_after_the_linger(
    settings_factory: Any, client_broker: Any, app: Tracker
) -> None:
    """Events delivered one by one within the linger make one batch (one transaction, one ack)."""
    settings: RuntimeSettings = settings_factory()
    recorder = Recorder(app)
    js = client_broker._connection.jetstream()
    parts, _ = consumer(settings, recorder, linger=1.0)
    async with running(parts, settings):
        await publish(client_broker, [("room-0", 0)])
        await wait_for(lambda: len(recorder.applied) == 1)
        for n in range(1, 5):
            [seq] = await publish(client_broker, [(f"room-{n}", n)])

            async def delivered(seq: int = seq) -> bool:
                info = await js.consumer_info("MEETPLANE", "test-consumer")
                return bool(info.delivered.stream_seq and info.delivered.stream_seq >= seq)

            await wait_for(delivered)  # each reached the consumer before the next is sent
        await wait_for(lambda: len(recorder.applied) == 5)
    assert recorder.applied == [(f"room-{n}", f"n{n}") for n in range(5)]
    assert recorder.batches == [1, 4]


async def test_a_take_behind_the_head_does_not_linger(client_broker: Any) -> None:
    """Draining a backlog, what arrived is handled at once: more is already on its way."""
    import time

    from services.runtime.nats import ensure_stream

    await ensure_stream(client_broker._connection)
    await publish(client_broker, [(f"room-{n}", n) for n in range(20)])
    async with open_pull(client_broker, "pull-backlog", "all", "all") as pull:  # 8 at a time
        started = time.monotonic()
        taken = await pull.take(16, timeout=10, linger=30)
        assert 0 < len(taken) <= 8
        assert taken[-1].metadata.num_pending > 0
        assert time.monotonic() - started < 10, "it lingered behind the head"


async def test_caught_up_ends_a_linger_at_once(
    settings_factory: Any, client_broker: Any, app: Tracker
) -> None:
    """A caller reading its own write does not wait out the linger."""
    import time

    settings: RuntimeSettings = settings_factory()
    recorder = Recorder(app)
    parts, durable = consumer(settings, recorder, linger=30.0)
    async with running(parts, settings):
        await publish(client_broker, [("room-a", 1)])
        started = time.monotonic()
        assert await durable.caught_up(timeout=20.0)
        assert time.monotonic() - started < 10, "the linger was cut short"
        await publish(client_broker, [("room-a", 2)])
        assert await durable.caught_up(timeout=20.0)
    assert recorder.applied == [("room-a", "n1"), ("room-a", "n2")]


async def test_concurrent_caught_up_calls_share_reads_begun_after_they_asked(
    settings_factory: Any, client_broker: Any, app: Tracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fifty joins in flight asked JetStream for the stream's head fifty times.

    Callers waiting together share one read; a caller arriving while a read is
    under way waits for the next one, since that read may have missed an event
    published just before the caller asked.
    """
    settings: RuntimeSettings = settings_factory()
    recorder = Recorder(app)
    parts, durable = consumer(settings, recorder)
    async with running(parts, settings):
        await publish(client_broker, [("room-a", 1)])
        real_read = durable._read_head
        reads: list[int] = []
        release = asyncio.Event()

        async def slow_read() -> int:
            head = await real_read()
            reads.append(head)
            if len(reads) == 1:
                await release.wait()  # answered after the late event below was published
            return head

        monkeypatch.setattr(durable, "_read_head", slow_read)
        early = [asyncio.create_task(durable.caught_up(timeout=10.0)) for _ in range(10)]
        await wait_for(lambda: reads)
        await publish(client_broker, [("room-b", 2)])
        late = asyncio.create_task(durable.caught_up(timeout=10.0))
        release.set()
        assert all(await asyncio.gather(*early))
        assert await late
        assert ("room-b", "n2") in recorder.applied, "the late caller waited for its event"
        assert len(reads) == 2 and reads[1] > reads[0]


async def test_caught_up_is_false_when_the_stream_cannot_say_its_head(
    settings_factory: Any, client_broker: Any, app: Tracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A NATS node died and JetStream elects a new leader: its API times out.

    The read-your-writes barrier must answer "not known to be caught up" (the
    caller then asks the owner), not raise into the command as an internal error.
    """
    from nats.errors import TimeoutError as NatsTimeoutError

    settings: RuntimeSettings = settings_factory()
    parts, durable = consumer(settings, Recorder(app))
    async with running(parts, settings):
        real_js = durable._js

        def electing() -> Any:
            js = real_js()

            async def get_last_msg(*_: Any, **__: Any) -> Any:
                raise NatsTimeoutError

            js.get_last_msg = get_last_msg  # type: ignore[method-assign]
            return js

        monkeypatch.setattr(durable, "_js", electing)
        assert await durable.caught_up(timeout=1.0) is False


async def test_two_replicas_share_one_lease_and_keep_order(
    settings_factory: Any, client_broker: Any, app: Tracker, tmp_path: Path
) -> None:
    settings: RuntimeSettings = settings_factory()
    recorder = Recorder(app)
    first, _ = consumer(settings, recorder, lease=True)
    second, _ = consumer(settings, recorder, lease=True)
    events = [(f"room-{n % 3}", n) for n in range(200)]
    async with running(first, settings), running(second, settings):
        for chunk in range(0, 200, 20):
            await publish(client_broker, events[chunk : chunk + 20])
        await wait_for(lambda: len(recorder.applied) >= 200)
    assert recorder.applied == [(room, f"n{n}") for room, n in events]


async def test_dead_letters_carry_the_original_message(
    settings_factory: Any, client_broker: Any, app: Tracker
) -> None:
    settings: RuntimeSettings = settings_factory()
    recorder = Recorder(app)
    recorder.poison = {"n7"}
    parts, _ = consumer(settings, recorder)
    async with running(parts, settings):
        [seq] = await publish(client_broker, [("room-bad", 7)])
        dead = DeadLetters(client_broker._connection, dlq_stream_name(settings.stream_name))
        await wait_for(lambda: dead.count("test-consumer"))
        [parked] = await dead.list("test-consumer")
    assert parked.stream_seq == seq
    assert parked.subject == SUBJECT
    assert b'"reason":"n7"' in parked.data


async def test_a_lost_delivery_rebinds_from_the_recorded_position(
    settings_factory: Any, client_broker: Any, app: Tracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A delivery that never reached us (a dropped connection) must not be acked by ack-all."""
    from services.runtime.pull import PullStream

    settings: RuntimeSettings = settings_factory()
    recorder = Recorder(app)
    deliver = PullStream._on_message
    dropped: list[int] = []

    async def lossy(self: PullStream, msg: Any) -> None:
        status = msg.headers.get("Status") if msg.headers else None
        if status is None and msg.data and b'"n2"' in msg.data and not dropped:
            dropped.append(msg.metadata.sequence.stream)
            self._outstanding -= 1
            return  # lost in transit: the server counts it as delivered
        await deliver(self, msg)

    monkeypatch.setattr(PullStream, "_on_message", lossy)
    parts, _ = consumer(settings, recorder)
    async with running(parts, settings):
        await publish(client_broker, [("room-a", 1), ("room-a", 2), ("room-a", 3)])
        await wait_for(lambda: len(recorder.applied) == 3)
    assert dropped, "the test dropped one delivery"
    assert recorder.applied == [("room-a", "n1"), ("room-a", "n2"), ("room-a", "n3")]


async def test_a_deleted_jetstream_consumer_is_recreated_and_nothing_is_lost(
    settings_factory: Any, client_broker: Any, app: Tracker
) -> None:
    settings: RuntimeSettings = settings_factory()
    recorder = Recorder(app)
    parts, _ = consumer(settings, recorder)
    js = client_broker._connection.jetstream()
    async with running(parts, settings):
        await publish(client_broker, [("room-a", 1)])
        await wait_for(lambda: len(recorder.applied) == 1)
        await js.delete_consumer("MEETPLANE", "test-consumer")
        await publish(client_broker, [("room-a", 2), ("room-b", 3)])
        await wait_for(lambda: len(recorder.applied) == 3)
    assert recorder.applied == [("room-a", "n1"), ("room-a", "n2"), ("room-b", "n3")]


@contextlib.asynccontextmanager
async def open_pull(
    client_broker: Any, name: str, ack_policy: str, deliver_policy: str, **options: Any
) -> AsyncIterator[PullStream]:
    """A JetStream consumer on the test subject and a `PullStream` of 8 on it, removed after."""
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

    from services.runtime.nats import ensure_stream

    connection = client_broker._connection
    await ensure_stream(connection)
    js = connection.jetstream()
    config = ConsumerConfig(
        durable_name=name,
        ack_policy=AckPolicy(ack_policy),
        deliver_policy=DeliverPolicy(deliver_policy),
        filter_subject=SUBJECT,
    )
    await js.add_consumer("MEETPLANE", config)
    pull = PullStream(connection, "MEETPLANE", name, 8, **options)
    await pull.start()
    try:
        yield pull
    finally:
        await pull.close()
        await js.delete_consumer("MEETPLANE", name)


async def test_an_expired_pull_is_reopened_at_once(client_broker: Any) -> None:
    """When the open request expires, the next one opens then, not at the take's timeout."""
    import time

    async with open_pull(
        client_broker, "pull-expiry", "all", "new", expires=0.3, heartbeat=0.1
    ) as pull:
        started = time.monotonic()
        assert await pull.take(8, timeout=10) == []
        assert time.monotonic() - started < 5, "woken by the expiry, not the timeout"
        [seq] = await publish(client_broker, [("room-a", 1)])
        [msg] = await pull.take(8, timeout=10)
        assert msg.metadata.sequence.stream == seq


async def test_an_explicit_ack_pull_takes_redeliveries_in_its_stride(client_broker: Any) -> None:
    """A nak'ed message comes back between first deliveries: not a lost delivery (webhooks)."""
    async with open_pull(
        client_broker, "pull-explicit", "explicit", "new", check_gaps=False
    ) as pull:
        taken: list[tuple[int, int]] = []
        for n in (1, 2, 3):
            [seq] = await publish(client_broker, [("room-a", n)])
            while seq not in [s for s, _ in taken]:
                for msg in await pull.take(8, timeout=10):
                    meta = msg.metadata
                    taken.append((meta.sequence.stream, meta.num_delivered))
                    if meta.num_delivered == 1:
                        await msg.nak()  # redelivered at once, before the next event
                    else:
                        await msg.ack()
        redelivered = [s for s, delivered in taken if delivered > 1]
        assert redelivered, f"nothing was redelivered: {taken}"


async def test_a_batch_that_wrote_nothing_has_its_position_recorded_once_quiet(
    settings_factory: Any, client_broker: Any, app: Tracker
) -> None:
    """`process` returning False defers the position; the consumer writes it when quiet."""
    settings: RuntimeSettings = settings_factory()
    recorder = Recorder(app)
    recorder.no_op = {"n1", "n2"}
    parts, _ = consumer(settings, recorder)
    async with running(parts, settings):
        seqs = await publish(client_broker, [("room-a", 1), ("room-a", 2)])
        await wait_for(lambda: app.position_of("test-consumer") == seqs[-1])
        assert recorder.recorded == [seqs[-1]], "one position write, after the no-op batches"
        [more] = await publish(client_broker, [("room-a", 3)])
        await wait_for(lambda: app.position_of("test-consumer") == more)
    assert recorder.applied == [("room-a", "n1"), ("room-a", "n2"), ("room-a", "n3")]
    assert recorder.recorded == [seqs[-1], more], "a batch that wrote records its own position"
