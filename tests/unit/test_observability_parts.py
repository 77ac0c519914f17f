"""Observability parts on their own: when tracing turns on, the commit's trace context
stored with its events, trace context in NATS headers, the health port of every
service under `up`."""

from __future__ import annotations

import json

import pytest
from eventsourcing.domain import Aggregate
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from services.runtime import telemetry
from services.runtime.launcher import Platform
from services.runtime.settings import RuntimeSettings
from services.runtime.store import TRACE_KEY, ServiceApplication
from services.runtime.telemetry import (
    extract,
    inject,
    trace_id_of,
    traceparent_context,
    tracing_requested,
    with_traceparent,
)


class Thing(Aggregate):
    """An aggregate for the event store tests."""

    def __init__(self, name: str) -> None:
        self.name = name


def test_tracing_is_on_only_when_an_otlp_endpoint_is_set() -> None:
    assert not tracing_requested({})
    assert tracing_requested({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert tracing_requested({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"})
    assert not tracing_requested(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}
    )


def test_a_commit_stores_its_trace_context_and_domain_events_never_see_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = ServiceApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    monkeypatch.setattr(telemetry, "TRACER", trace.NoOpTracer())
    untraced = Thing("before tracing")
    app.save(untraced)  # tracing off: nothing stored, the state is as eventsourcing's
    tracer = TracerProvider().get_tracer("t")
    monkeypatch.setattr(telemetry, "TRACER", tracer)
    monkeypatch.setattr(telemetry, "_tracing_on", True)  # as an SDK provider would say
    with tracer.start_as_current_span("command") as command:
        traced = Thing("traced")
        app.save(traced)

    first, second = app.process_recorder.select_notifications(1, 10)
    assert TRACE_KEY.encode() not in first.state
    assert app.traced_mapper.traced_event(first)[1] is None
    event, traceparent = app.traced_mapper.traced_event(second)
    assert TRACE_KEY not in vars(event)
    assert trace_id_of(traceparent) == format(command.get_span_context().trace_id, "032x")
    # The commit span (a child of the command's) is the parent the outbox gets.
    carried = trace.get_current_span(traceparent_context(traceparent)).get_span_context()
    assert carried.span_id != command.get_span_context().span_id
    assert app.repository.get(traced.id).name == "traced"
    assert TRACE_KEY not in vars(app.repository.get(traced.id))


def test_an_envelope_traceparent_is_used_only_when_headers_carry_none() -> None:
    own = "00-" + "a" * 32 + "-" + "b" * 16 + "-01"
    stored = "00-" + "c" * 32 + "-" + "d" * 16 + "-01"
    assert with_traceparent({"traceparent": own}, stored) == {"traceparent": own}
    assert with_traceparent({"Nats-Msg-Id": "x"}, stored) == {
        "Nats-Msg-Id": "x",
        "traceparent": stored,
    }
    assert with_traceparent(None, None) is None
    assert trace_id_of(stored) == "c" * 32
    assert trace_id_of("garbage") == ""
    assert traceparent_context(None) is None


def test_trace_context_round_trips_through_message_headers() -> None:
    span = TracerProvider().get_tracer("t").start_span("publish")
    headers: dict[str, str] = {}
    inject(headers, trace.set_span_in_context(span))
    assert headers["traceparent"].split("-")[2] == format(span.get_span_context().span_id, "016x")
    carried = trace.get_current_span(extract(headers)).get_span_context()
    assert carried.trace_id == span.get_span_context().trace_id
    assert not trace.get_current_span(extract({})).get_span_context().is_valid


def test_every_service_under_up_gets_its_own_health_port(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MEETPLANE_HEALTH_PORT_BASE", "19100")
    platform = Platform(RuntimeSettings(), http_port=19000)
    ports = platform.health_ports()
    assert ports == {
        "rooms": 19100,
        "meetings": 19101,
        "recordings": 19102,
        "janitor": 19103,
        "identity": 19104,
    }
    needs = {n.port: n.variable for n in platform.port_needs()}
    assert all(needs[p] == "MEETPLANE_HEALTH_PORT_BASE" for p in ports.values())
    assert platform.metrics_urls()["gateway"] == "http://127.0.0.1:19000/metrics"
    only = Platform(RuntimeSettings(), services=("janitor", "gateway"))
    assert only.health_ports() == {"janitor": 19103}  # stable: a service keeps its port
    monkeypatch.setenv("MEETPLANE_HEALTH_PORT_BASE", "0")
    assert Platform(RuntimeSettings()).health_ports() == {}


def test_the_webhook_consumer_falls_back_on_the_envelope_traceparent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from nats.aio.msg import Msg

    from services.gateway.webhooks import delivery

    stored = "00-" + "c" * 32 + "-" + "d" * 16 + "-01"
    body = json.dumps({"id": "e1", "traceparent": stored}).encode()
    monkeypatch.setattr(delivery, "tracing_enabled", lambda: True)
    bare = Msg(None, subject="meetplane.evt.meeting.MeetingStarted", data=body)  # type: ignore[arg-type]
    assert delivery._trace_headers(bare) == {"traceparent": stored}
    own = {"traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01"}
    assert delivery._trace_headers(Msg(None, data=body, headers=own)) == own  # type: ignore[arg-type]
    assert delivery._trace_headers(Msg(None, data=b"not json")) is None  # type: ignore[arg-type]
    monkeypatch.setattr(delivery, "tracing_enabled", lambda: False)
    assert delivery._trace_headers(bare) is None  # tracing off: the body is not read
