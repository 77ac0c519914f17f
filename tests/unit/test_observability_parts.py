"""Observability parts on their own: when tracing turns on, commit spans kept for the
outbox, trace context in NATS headers, the health port of every service under `up`."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from services.runtime.launcher import Platform
from services.runtime.settings import RuntimeSettings
from services.runtime.telemetry import CommitTraces, extract, inject, tracing_requested


def test_tracing_is_on_only_when_an_otlp_endpoint_is_set() -> None:
    assert not tracing_requested({})
    assert tracing_requested({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert tracing_requested({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"})
    assert not tracing_requested(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}
    )


def test_commit_traces_are_taken_once_and_bounded() -> None:
    traces = CommitTraces(maxsize=2)
    span = TracerProvider().get_tracer("t").start_span("commit")
    context = trace.set_span_in_context(span)
    traces.record([1, 2, 3], context)
    assert traces.pop(1) is None  # the oldest was dropped
    assert traces.pop(2) is context
    assert traces.pop(2) is None


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
