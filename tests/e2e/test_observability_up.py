"""Observability of `meetplane up`: one trace per request across processes, every
service's /metrics, and alerts and dashboards that name only metrics the code exports.

Tracing is turned on as an operator would (`OTEL_EXPORTER_OTLP_ENDPOINT`), pointed at
an OTLP/HTTP receiver in this test that decodes what each process exports.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from services.runtime.launcher import SERVICES
from tests.support.otlp import OtlpReceiver, ReceivedSpan
from tests.support.platform import Platform
from tests.support.services import wait_until

MONITORING = Path(__file__).resolve().parents[2] / "deploy" / "k8s" / "monitoring"
T = TypeVar("T")
SUFFIXES = ("", "_total", "_bucket", "_count", "_sum", "_created")


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    yield receiver
    receiver.close()


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory, receiver: OtlpReceiver) -> Iterator[Platform]:
    platform = Platform(
        tmp_path_factory.mktemp("traced"),
        services=",".join(SERVICES),
        extra_env={
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        },
    )
    try:
        platform.wait_ready()
        yield platform
    finally:
        platform.stop()


def metrics_urls(platform: Platform) -> dict[str, str]:
    """Where `up` says each service is scraped (its run info)."""
    info = json.loads((platform.data_dir / "run" / "up.json").read_text())
    return dict(info["metrics"])


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200, url
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def names_in(url: str) -> set[str]:
    response = httpx.get(url, timeout=10)
    names = set()
    for family in text_string_to_metric_families(response.text):
        names.update(family.name + suffix for suffix in SUFFIXES)
        names.update(sample.name for sample in family.samples)
    return names


def value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def wait_for_sync(predicate: Callable[[], list[T] | None], timeout: float = 30.0) -> list[T]:
    """Poll `predicate` until it returns a non-empty list."""
    return wait_until(predicate, timeout)  # type: ignore[return-value]


def _by_id(spans: list[ReceivedSpan]) -> dict[str, ReceivedSpan]:
    return {s.span_id: s for s in spans}


def _chain(span: ReceivedSpan, spans: list[ReceivedSpan]) -> list[str]:
    by_id = _by_id(spans)
    names = []
    while span.parent_span_id and span.parent_span_id in by_id:
        span = by_id[span.parent_span_id]
        names.append(f"{span.service}:{span.name}")
    return names


def test_every_service_has_a_metrics_port_under_up(traced: Platform) -> None:
    urls = metrics_urls(traced)
    assert set(urls) == set(SERVICES)
    for service, url in urls.items():
        if service != "gateway":
            base = url.removesuffix("/metrics")
            assert httpx.get(f"{base}/readyz", timeout=5).json()["service"] == service
        assert "process_cpu_seconds_total" in names_in(url), service


def test_one_post_rooms_is_one_trace_through_every_hop(
    traced: Platform, receiver: OtlpReceiver
) -> None:
    response = traced.client.post("/api/v1/rooms", json={"roomName": "traced end to end"})
    assert response.status_code == 201
    room_id = response.json()["roomId"]

    def complete() -> list[ReceivedSpan] | None:
        spans = receiver.snapshot()
        server = [s for s in spans if s.name == "POST /api/v1/rooms"]
        if not server:
            return None
        trace = [s for s in spans if s.trace_id == server[-1].trace_id]
        have = {(s.service, s.name) for s in trace}
        # Each process exports in its own batches: wait for every span the test reads.
        wanted = {
            ("meetplane-rooms", "rooms.create"),
            ("meetplane-rooms", "eventstore.commit"),
            ("meetplane-rooms", "meetplane.evt.room.RoomCreated publish"),
            ("meetplane-meetings", "meetings-events process"),
            ("meetplane-janitor", "janitor-events process"),
        }
        return trace if wanted <= have else None

    trace = wait_for_sync(complete)

    by_name = {(s.service, s.name): s for s in trace}
    server = by_name[("meetplane-gateway", "POST /api/v1/rooms")]
    handler = by_name[("meetplane-rooms", "rooms.create")]
    publish = by_name[("meetplane-rooms", "meetplane.evt.room.RoomCreated publish")]
    meetings = by_name[("meetplane-meetings", "meetings-events process")]
    janitor = by_name[("meetplane-janitor", "janitor-events process")]
    assert server.parent_span_id == ""  # the trace starts at the gateway
    assert "meetplane-gateway:POST /api/v1/rooms" in _chain(handler, trace)
    assert _chain(publish, trace)[:2] == [
        "meetplane-rooms:eventstore.commit",
        "meetplane-rooms:rooms.create",
    ]
    assert meetings.parent_span_id == publish.span_id
    assert janitor.parent_span_id == publish.span_id
    assert _chain(janitor, trace)[-1] == "meetplane-gateway:POST /api/v1/rooms"

    # The rooms service's log line of this request carries the trace's ids.
    log = traced.data_dir / "logs" / "rooms.log"
    created = [
        json.loads(line)
        for line in log.read_text().splitlines()
        if line.startswith("{") and room_id in line and '"room.created"' in line
    ]
    assert created and created[0]["trace_id"] == server.trace_id
    assert created[0]["span_id"] in {s.span_id for s in trace}


def test_metrics_move_when_a_room_is_created(traced: Platform) -> None:
    urls = metrics_urls(traced)
    before = scrape(urls["rooms"])
    response = traced.client.post("/api/v1/rooms", json={"roomName": "counted end to end"})
    assert response.status_code == 201
    after = scrape(urls["rooms"])
    ok = {"service": "rooms", "verb": "create", "outcome": "ok"}
    assert (
        value(after, "meetplane_commands_total", **ok)
        == value(before, "meetplane_commands_total", **ok) + 1
    )
    gateway = scrape(urls["gateway"])
    created = [
        count
        for (name, labels), count in gateway.items()
        if name == "meetplane_http_requests_total"
        and dict(labels)["method"] == "POST"
        and dict(labels)["route"].endswith("/rooms")
        and dict(labels)["status"] == "201"
    ]
    assert sum(created) >= 1

    def settled() -> bool:
        janitor = scrape(urls["janitor"])
        rooms = scrape(urls["rooms"])
        return (
            ("meetplane_consumer_lag", (("consumer", "janitor-events"),)) in janitor
            and value(janitor, "meetplane_consumer_lag", consumer="janitor-events") == 0
            and value(janitor, "meetplane_consumer_position", consumer="janitor-events") > 0
            and ("meetplane_outbox_lag", (("service", "rooms"),)) in rooms
            and value(rooms, "meetplane_outbox_lag", service="rooms") == 0
        )

    wait_for_sync(lambda: [True] if settled() else None)
    janitor = scrape(urls["janitor"])
    assert ("meetplane_janitor_timers_pending", ()) in janitor
    recordings = scrape(urls["recordings"])
    assert ("meetplane_recordings_active", ()) in recordings
    for service in ("rooms", "meetings", "recordings", "janitor", "identity"):
        assert value(scrape(urls[service]), "meetplane_service_ready", service=service) == 1


def _metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\b(meetplane_[a-z0-9_]+)\b", expr))


def _rule_expressions() -> list[str]:
    rule = yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())
    return [r["expr"] for group in rule["spec"]["groups"] for r in group["rules"]]


def _dashboard_expressions() -> list[str]:
    dashboard = json.loads((MONITORING / "dashboards" / "meetplane.json").read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def test_alerts_and_dashboard_name_only_exported_metrics(traced: Platform) -> None:
    exported: set[str] = set()
    for url in metrics_urls(traced).values():
        exported |= names_in(url)
    expressions = _rule_expressions() + _dashboard_expressions()
    assert expressions
    for expr in expressions:
        named = _metric_names(expr)
        assert named or "up{" in expr, expr
        assert named <= exported, (sorted(named - exported), expr)


def test_status_prints_replicas_lags_dead_letters_and_stream_size(traced: Platform) -> None:
    assert traced.client.post("/api/v1/rooms", json={"roomName": "status"}).status_code == 201
    env = {**traced.env, "MEETPLANE_NATS_URL": traced.nats.url}

    def status() -> list[dict[str, Any]] | None:
        out = subprocess.run(
            [sys.executable, "-m", "services.runtime.cli", "status", "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        report: dict[str, Any] = json.loads(out)
        rooms = next(s for s in report["services"] if s["service"] == "rooms")
        return [report] if rooms["outbox_lag"] == 0 else None

    (report,) = wait_for_sync(status)
    assert report["stream"]["name"] == "MEETPLANE"
    assert report["stream"]["messages"] >= 1 and report["stream"]["bytes"] > 0
    assert report["stream"]["dead_letters"] == 0
    services = {s["service"]: s for s in report["services"]}
    assert set(services) == set(SERVICES) - {"gateway"}
    for name, line in services.items():
        assert line["replicas"] == 1, line
        assert line["consumer"] == f"{name}-events"
        assert line["parked"] == 0
        if name != "janitor":  # the janitor publishes from its timers, it has no outbox
            assert line["outbox_lag"] is not None, line  # read from its /metrics port
    assert services["janitor"]["consumer_lag"] == 0

    text = subprocess.run(
        [sys.executable, "-m", "services.runtime.cli", "status"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert text.startswith("stream MEETPLANE:") and "janitor-events" in text


EXPECTED = {
    "gateway": {
        "meetplane_http_requests_total",
        "meetplane_http_request_seconds_bucket",
        "meetplane_webhook_deliveries_total",
        "meetplane_webhook_delivery_attempts_bucket",
    },
    "rooms": {
        "meetplane_commands_total",
        "meetplane_command_seconds_bucket",
        "meetplane_outbox_lag",
    },
    "meetings": {
        "meetplane_commands_total",
        "meetplane_outbox_lag",
        "meetplane_external_call_seconds_bucket",
    },
    "recordings": {
        "meetplane_recordings_active",
        "meetplane_recording_bytes_written_total",
        "meetplane_external_call_seconds_bucket",
        "meetplane_external_call_errors_total",
        "meetplane_outbox_lag",
    },
    "janitor": {
        "meetplane_janitor_timers_pending",
        "meetplane_janitor_firing_lateness_seconds_bucket",
        "meetplane_janitor_timers_fired_total",
    },
    "identity": {"meetplane_commands_total", "meetplane_outbox_lag"},
}
CONSUMERS = {"rooms", "meetings", "recordings", "janitor", "identity"}


def test_each_service_exports_its_metrics(traced: Platform) -> None:
    urls = metrics_urls(traced)
    for service, expected in EXPECTED.items():
        names = names_in(urls[service])
        assert expected <= names, (service, sorted(expected - names))
        if service in CONSUMERS:
            consumer = {
                "meetplane_consumer_lag",
                "meetplane_consumer_events_total",
                "meetplane_consumer_parked_messages",
                "meetplane_service_ready",
            }
            assert consumer <= names, (service, sorted(consumer - names))
