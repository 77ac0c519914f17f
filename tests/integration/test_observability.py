"""Tracing, metrics and log ids across gateway -> NATS -> services -> JetStream -> consumers.

The services run in this process against a real NATS, with the SDK's in-memory
span exporter installed as the global tracer provider (tracing is on exactly
as `OTEL_EXPORTER_OTLP_ENDPOINT` turns it on in a service process).
"""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, redirect_stderr
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY

from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings
from services.janitor.main import build as build_janitor
from services.janitor.settings import JanitorSettings
from services.meetings.main import build as build_meetings
from services.meetings.settings import MeetingsSettings
from services.rooms.main import build as build_rooms
from services.rooms.settings import RoomsSettings
from services.runtime.logging import configure_logging
from tests.support.http import serve_app
from tests.support.services import running, wait_for

KEY = "obs-key"
_EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module")
def spans() -> Iterator[InMemorySpanExporter]:
    """The in-memory exporter behind this process's tracer provider (set once per process)."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        trace.set_tracer_provider(provider)
    yield _EXPORTER


@pytest.fixture
async def http(
    settings_factory: Any, spans: InMemorySpanExporter
) -> AsyncIterator[httpx.AsyncClient]:
    async with AsyncExitStack() as stack:
        for build, cls in (
            (build_rooms, RoomsSettings),
            (build_meetings, MeetingsSettings),
            (build_janitor, JanitorSettings),
        ):
            settings = settings_factory(cls)
            await stack.enter_async_context(running(build(settings), settings))
        gateway = settings_factory(GatewaySettings, api_key=KEY)
        base = await stack.enter_async_context(serve_app(create_app(gateway)))
        client = await stack.enter_async_context(
            httpx.AsyncClient(base_url=base, headers={"X-API-KEY": KEY}, timeout=15)
        )
        spans.clear()
        yield client


def _named(spans: list[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def _one(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = _named(spans, name)
    assert len(found) == 1, (name, sorted({s.name for s in spans}))
    return found[0]


def _parent_of(span: ReadableSpan, spans: list[ReadableSpan]) -> ReadableSpan:
    assert span.parent is not None, span.name
    by_id = {s.context.span_id: s for s in spans}
    return by_id[span.parent.span_id]


def _ancestors(span: ReadableSpan, spans: list[ReadableSpan]) -> list[str]:
    names = []
    while span.parent is not None:
        span = _parent_of(span, spans)
        names.append(span.name)
    return names


async def test_one_request_is_one_trace_from_gateway_to_every_consumer(
    http: httpx.AsyncClient, spans: InMemorySpanExporter
) -> None:
    response = await http.post("/api/v1/rooms", json={"roomName": "traced"})
    assert response.status_code == 201

    def consumers_done() -> list[ReadableSpan] | None:
        finished = list(spans.get_finished_spans())
        names = {s.name for s in finished}
        wanted = {"meetings-events process", "janitor-events process"}
        return finished if wanted <= names else None

    finished = await wait_for(consumers_done)
    server = _one(finished, "POST /api/v1/rooms")
    trace_id = server.context.trace_id
    in_trace = [s for s in finished if s.context.trace_id == trace_id]

    command = _one(in_trace, "rooms.create")
    commit = next(
        s
        for s in _named(in_trace, "eventstore.commit")
        if s.attributes
        and s.attributes.get("meetplane.application") == "rooms"
        and "rooms.create" in _ancestors(s, in_trace)
    )
    publish = _one(in_trace, "meetplane.evt.room.RoomCreated publish")
    meetings = _one(in_trace, "meetings-events process")
    janitor = _one(in_trace, "janitor-events process")

    # gateway HTTP span -> NATS command (faststream) -> handler -> commit -> outbox -> consumers
    assert "POST /api/v1/rooms" in _ancestors(command, in_trace)
    assert _parent_of(commit, in_trace) is command
    assert _parent_of(publish, in_trace) is commit
    assert _parent_of(meetings, in_trace) is publish
    assert _parent_of(janitor, in_trace) is publish
    assert _ancestors(janitor, in_trace)[-1] == "POST /api/v1/rooms"


def _sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_metrics_move_when_a_room_is_created(http: httpx.AsyncClient) -> None:
    ok = {"service": "rooms", "verb": "create", "outcome": "ok"}
    before = _sample("meetplane_commands_total", ok)
    latency_before = _sample(
        "meetplane_command_seconds_count", {"service": "rooms", "verb": "create"}
    )
    processed = {"consumer": "janitor-events", "outcome": "processed"}
    consumed_before = _sample("meetplane_consumer_events_total", processed)

    response = await http.post("/api/v1/rooms", json={"roomName": "counted"})
    assert response.status_code == 201
    missing = await http.get("/api/v1/rooms/nope")
    assert missing.status_code == 404

    assert _sample("meetplane_commands_total", ok) == before + 1
    assert (
        _sample("meetplane_command_seconds_count", {"service": "rooms", "verb": "create"})
        == latency_before + 1
    )
    assert (
        _sample(
            "meetplane_commands_total", {"service": "rooms", "verb": "get", "outcome": "not_found"}
        )
        >= 1
    )
    await wait_for(lambda: _sample("meetplane_consumer_events_total", processed) > consumed_before)
    # Everything consumed and published: both lags are back to zero.
    await wait_for(
        lambda: (
            REGISTRY.get_sample_value("meetplane_consumer_lag", {"consumer": "janitor-events"}) == 0
        )
    )
    await wait_for(
        lambda: REGISTRY.get_sample_value("meetplane_outbox_lag", {"service": "rooms"}) == 0
    )


async def test_log_lines_carry_the_trace_and_span_ids(
    http: httpx.AsyncClient, spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    from services.gateway import middleware
    from services.runtime.logging import get_logger

    configure_logging("json", "INFO")
    # structlog caches a logger on first use: one an earlier test used writes with the
    # configuration of then. A fresh one takes this test's.
    monkeypatch.setattr(middleware, "log", get_logger("meetplane.gateway.http"))
    captured = io.StringIO()
    try:
        with redirect_stderr(captured):
            import structlog

            structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=captured))
            response = await http.post("/api/v1/rooms", json={"roomName": "logged"})
            # The access line is written after the response is sent: the client can
            # see the 201 first.
            await wait_for(lambda: '"http.request"' in captured.getvalue())
    finally:
        configure_logging("console", "INFO")
    assert response.status_code == 201
    lines = [json.loads(line) for line in captured.getvalue().splitlines() if line.startswith("{")]
    access = next(line for line in lines if line.get("event") == "http.request")
    server = next(s for s in spans.get_finished_spans() if s.name == "POST /api/v1/rooms")
    assert access["trace_id"] == format(server.context.trace_id, "032x")
    assert len(access["span_id"]) == 16


async def test_consumer_lag_grows_while_a_batch_is_stuck_and_returns_to_zero(
    settings_factory: Any, client_broker: Any
) -> None:
    """The lag alert must see a consumer whose store is down: its batch never finishes."""
    import asyncio

    from services.runtime.store import eventsourcing_env
    from tests.integration.test_consumer import Recorder, Tracker, consumer, publish

    unblocked = asyncio.Event()

    class Stuck(Recorder):
        async def __call__(self, batch: Any, position: Any) -> None:
            await unblocked.wait()
            await super().__call__(batch, position)

    settings = settings_factory()
    recorder = Stuck(Tracker(env=eventsourcing_env(settings, "consumertest")))
    parts, durable = consumer(settings, recorder)
    lag = {"consumer": durable.name}
    async with running(parts, settings):
        await publish(client_broker, [("room-a", 1)])
        await wait_for(lambda: durable.position == 0 and durable._pull is not None)
        await publish(client_broker, [("room-a", 2), ("room-b", 3), ("room-c", 4)])
        # Refreshed with the batch's heartbeat: the stuck event and the three behind it.
        await wait_for(lambda: REGISTRY.get_sample_value("meetplane_consumer_lag", lag) == 4, 15)
        unblocked.set()
        await wait_for(lambda: len(recorder.applied) == 4)
        await wait_for(lambda: REGISTRY.get_sample_value("meetplane_consumer_lag", lag) == 0)


def _trace_of(traceparent: str | None) -> int:
    assert traceparent, "no traceparent"
    return int(traceparent.split("-")[1], 16)


async def test_events_published_after_a_restart_keep_the_trace_of_their_command(
    settings_factory: Any, spans: InMemorySpanExporter, tmp_path: Any
) -> None:
    """The commit's trace context is stored with its events, not held in memory.

    The rooms service commits a room while its outbox is held, and stops; a new
    rooms instance (new application, new outbox: nothing in memory) publishes it.
    The envelope carries the command's trace, its publish span is a child of the
    commit span, and the consumer's span is in the same trace.
    """
    from tests.support.services import stream_events

    hold = tmp_path / "outbox-hold"
    hold.touch()
    rooms = settings_factory(RoomsSettings, outbox_hold_file=hold)
    async with AsyncExitStack() as stack:
        meetings = settings_factory(MeetingsSettings)
        await stack.enter_async_context(running(build_meetings(meetings), meetings))
        gateway = settings_factory(GatewaySettings, api_key=KEY)
        base = await stack.enter_async_context(serve_app(create_app(gateway)))
        client = await stack.enter_async_context(
            httpx.AsyncClient(base_url=base, headers={"X-API-KEY": KEY}, timeout=15)
        )
        async with running(build_rooms(rooms), rooms):
            spans.clear()
            response = await client.post("/api/v1/rooms", json={"roomName": "restarted"})
            assert response.status_code == 201
            room_id = response.json()["roomId"]
        trace_id = _one(list(spans.get_finished_spans()), "POST /api/v1/rooms").context.trace_id
        of_room = [e for e in await stream_events(rooms.nats_url) if e["subject_id"] == room_id]
        assert of_room == [], "held: committed, not published"

        hold.unlink()
        async with running(build_rooms(rooms), rooms):

            def consumed() -> list[ReadableSpan] | None:
                finished = list(spans.get_finished_spans())
                in_trace = [s for s in finished if s.context.trace_id == trace_id]
                return in_trace if _named(in_trace, "meetings-events process") else None

            in_trace = await wait_for(consumed)
            [created] = [
                e for e in await stream_events(rooms.nats_url) if e["subject_id"] == room_id
            ]

    assert created["type"] == "RoomCreated"
    assert _trace_of(created["traceparent"]) == trace_id
    publish = _one(in_trace, "meetplane.evt.room.RoomCreated publish")
    commit = _parent_of(publish, in_trace)
    assert commit.name == "eventstore.commit"
    assert "rooms.create" in _ancestors(commit, in_trace)
    assert _parent_of(_one(in_trace, "meetings-events process"), in_trace) is publish


async def test_a_consumer_without_trace_headers_joins_the_envelope_trace_and_parks_it(
    settings_factory: Any, client_broker: Any, spans: InMemorySpanExporter
) -> None:
    """No trace context in the headers: the envelope's `traceparent` is the parent,
    and the dead-letter stream keeps it, so `dlq show` gives the command's trace id."""
    import uuid

    from contracts.events import RoomStatusChanged, make_envelope
    from services.runtime.dlq import DeadLetters
    from services.runtime.nats import dlq_stream_name
    from services.runtime.store import eventsourcing_env
    from tests.integration.test_consumer import SUBJECT, Recorder, Tracker, consumer

    traceparent = "00-" + uuid.uuid4().hex + "-" + uuid.uuid4().hex[:16] + "-01"
    js = client_broker._connection.jetstream()
    for reason in ("fine", "poison"):
        data = RoomStatusChanged(roomId="room-t", status="closed", reason=reason)
        event = make_envelope(uuid.uuid4(), data, source="rooms", subject_id="room-t")
        event.traceparent = traceparent
        await js.publish(SUBJECT, event.model_dump_json().encode())  # no headers

    settings = settings_factory()
    recorder = Recorder(Tracker(env=eventsourcing_env(settings, "consumertest")))
    recorder.poison.add("poison")
    parts, durable = consumer(settings, recorder)
    spans.clear()
    async with running(parts, settings):
        dead = DeadLetters(client_broker._connection, dlq_stream_name("MEETPLANE"))
        [parked] = await wait_for(lambda: dead.list(durable.name), 15)
    assert recorder.applied == [("room-t", "fine")]
    assert parked.summary()["traceId"] == traceparent.split("-")[1]
    processed = _named(list(spans.get_finished_spans()), f"{durable.name} process")
    assert processed
    assert {s.context.trace_id for s in processed} == {_trace_of(traceparent)}
    assert {s.parent.span_id for s in processed if s.parent} == {int(traceparent[-19:-3], 16)}
