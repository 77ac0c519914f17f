"""OpenTelemetry tracing for every service process, in one place.

- **Off by default.**  `configure_tracing` installs an SDK tracer provider that
  exports over OTLP/HTTP only when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
  `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set; the exporter reads the other
  standard `OTEL_*` variables itself.  Without it every span below is a no-op.
- **One trace per request, across NATS.**  Context travels as W3C trace
  context (`traceparent`) in NATS message headers: faststream's
  `NatsTelemetryMiddleware` does it for command request/reply; the outbox and
  `DurableConsumer` use `inject`/`extract` here for JetStream events.
- **Commit to publication, durably.**  The outbox publishes a commit later,
  maybe after a restart or from another replica, so the commit span's
  `traceparent` is stored with each event (`ServiceApplication`'s mapper in
  `services.runtime.store`, only while a span records); the outbox parents its
  publish spans on it and copies it into the envelope (`EventEnvelope.traceparent`),
  which a consumer falls back on when the message headers carry no context.
- **Logs carry the ids.**  `add_trace_ids` is a structlog processor that adds
  `trace_id` and `span_id` of the current span to every log line.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import TracerProvider as _SdkTracerProvider
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from prometheus_client import Counter, Histogram

TRACER = trace.get_tracer("meetplane")

EXTERNAL_SECONDS = Histogram(
    "meetplane_external_call_seconds",
    "Latency of calls to LiveKit and S3, by dependency and operation",
    ["dependency", "operation"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
EXTERNAL_ERRORS = Counter(
    "meetplane_external_call_errors_total",
    "Calls to LiveKit and S3 that failed, by dependency and operation",
    ["dependency", "operation"],
)

TRACEPARENT = "traceparent"
_W3C = TraceContextTextMapPropagator()


def tracing_requested(env: Mapping[str, str] | None = None) -> bool:
    """Whether the standard OTLP variables ask for trace export."""
    env = os.environ if env is None else env
    if env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    return bool(
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def configure_tracing(service: str) -> bool:
    """Export this process's spans over OTLP/HTTP if `tracing_requested()`; returns whether on.

    `service.name` is `meetplane-<service>`; `OTEL_RESOURCE_ATTRIBUTES` adds to it.
    """
    if not tracing_requested() or tracing_enabled():
        return tracing_enabled()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": f"meetplane-{service}"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return True


_tracing_on = False


def tracing_enabled() -> bool:
    """Whether an SDK tracer provider records spans in this process (OTLP or a test's).

    Asked for every command and every batch. OpenTelemetry sets the global provider
    at most once, so a yes is remembered.
    """
    global _tracing_on
    if not _tracing_on:
        _tracing_on = isinstance(trace.get_tracer_provider(), _SdkTracerProvider)
    return _tracing_on


def broker_middlewares(name: str) -> tuple[Any, ...]:
    """faststream middlewares for the broker of process `name`.

    Prometheus metrics of the NATS messages it handles and publishes
    (`meetplane_nats_*`, by handler subject), and, when tracing is on, the trace
    context in the headers of every command and reply.
    """
    from faststream.nats.prometheus import NatsPrometheusMiddleware
    from prometheus_client import REGISTRY

    metrics = NatsPrometheusMiddleware(
        registry=REGISTRY, app_name=name, metrics_prefix="meetplane_nats"
    )
    if not tracing_enabled():
        return (metrics,)
    from faststream.nats.opentelemetry import NatsTelemetryMiddleware

    # Telemetry outermost: the metrics middleware runs inside the message's span.
    return (NatsTelemetryMiddleware(), metrics)


def instrument_fastapi(app: Any) -> None:
    """Give a FastAPI app a server span per request (OpenTelemetry's instrumentation)."""
    if not tracing_enabled():
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,readyz,metrics")


@contextlib.contextmanager
def external_call(
    dependency: str, operation: str, benign: Callable[[Exception], bool] | None = None
) -> Iterator[None]:
    """Time a call to LiveKit or S3 (a client span and metrics); count its failure.

    `benign` tells an exception the caller treats as an answer (a missing
    object, an unknown room) from a failure.
    """
    started = time.perf_counter()
    with TRACER.start_as_current_span(
        f"{dependency} {operation}",
        kind=SpanKind.CLIENT,
        attributes={"peer.service": dependency},
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            yield
        except Exception as exc:
            if benign is None or not benign(exc):
                EXTERNAL_ERRORS.labels(dependency, operation).inc()
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise
        finally:
            EXTERNAL_SECONDS.labels(dependency, operation).observe(time.perf_counter() - started)


# ---- propagation over NATS headers ----------------------------------------------------


def inject(headers: MutableMapping[str, str], context: Context | None = None) -> None:
    """Write the trace context (of `context`, else the current one) into message headers."""
    propagate.inject(headers, context=context)


def extract(headers: Mapping[str, str] | None) -> Context:
    """The trace context a message's headers carry (empty if none)."""
    return propagate.extract(dict(headers or {}))


def add_trace_ids(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> Any:
    """structlog processor: `trace_id` and `span_id` of the current span, when there is one."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event_dict.setdefault("trace_id", format(context.trace_id, "032x"))
        event_dict.setdefault("span_id", format(context.span_id, "016x"))
    return event_dict


# ---- event store commit -> outbox publication -----------------------------------------


def span_traceparent(span: Span) -> str | None:
    """The W3C `traceparent` of a recording span (None when tracing is off)."""
    if not span.is_recording():
        return None
    carrier: dict[str, str] = {}
    _W3C.inject(carrier, trace.set_span_in_context(span))
    return carrier.get(TRACEPARENT)


def traceparent_context(traceparent: str | None) -> Context | None:
    """The context a stored or carried `traceparent` stands for (None if none or invalid)."""
    if not traceparent:
        return None
    context = _W3C.extract({TRACEPARENT: traceparent})
    return context if trace.get_current_span(context).get_span_context().is_valid else None


def trace_id_of(traceparent: str | None) -> str:
    """The trace id (32 hex digits) of a `traceparent`, "" if none or malformed."""
    context = traceparent_context(traceparent)
    if context is None:
        return ""
    return format(trace.get_current_span(context).get_span_context().trace_id, "032x")


def with_traceparent(
    headers: Mapping[str, str] | None, traceparent: str | None
) -> Mapping[str, str] | None:
    """A message's headers, or the envelope's `traceparent` when they carry no trace context."""
    if not traceparent or (headers and TRACEPARENT in headers):
        return headers
    return {**(headers or {}), TRACEPARENT: traceparent}


@contextlib.contextmanager
def commit_span(application: str) -> Iterator[Span]:
    """A span around an event store commit; the caller records its notification ids.

    With tracing off, the invalid span at once: the no-op tracer's span still
    attached and detached a context on every commit.
    """
    if not tracing_enabled():
        yield trace.INVALID_SPAN
        return
    with TRACER.start_as_current_span(
        "eventstore.commit", attributes={"meetplane.application": application}
    ) as span:
        yield span


@contextlib.contextmanager
def publish_spans(
    messages: Sequence[tuple[str, str, Context | None]],
) -> Iterator[list[dict[str, str]] | None]:
    """Producer spans for a pipelined publication, open until every ack is in.

    `messages` are (subject, event id, parent context) triples; yields the headers
    that carry each span (None with tracing off: nothing to carry).
    """
    if not tracing_enabled():
        yield None
        return
    spans = [
        TRACER.start_span(
            f"{subject} publish",
            context=parent,
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "nats",
                "messaging.destination.name": subject,
                "messaging.message.id": event_id,
            },
        )
        for subject, event_id, parent in messages
    ]
    headers: list[dict[str, str]] = []
    for span in spans:
        carried: dict[str, str] = {}
        inject(carried, trace.set_span_in_context(span))
        headers.append(carried)
    try:
        yield headers
    except BaseException as exc:
        for span in spans:
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        raise
    finally:
        for span in spans:
            span.end()


@contextlib.contextmanager
def consume_spans(
    consumer: str, messages: Sequence[tuple[Mapping[str, str] | None, dict[str, Any]]]
) -> Iterator[None]:
    """Spans for a consumer's batch: one per message, a child of the span that published it.

    `messages` are (headers, attributes) pairs.  With one message its span is
    current while the batch is processed (the commit and the logs join its
    trace); with several, a batch span linked to each is current instead.
    """
    if not tracing_enabled() or not messages:
        yield
        return
    spans = [
        TRACER.start_span(
            f"{consumer} process",
            context=extract(headers),
            kind=SpanKind.CONSUMER,
            attributes={"messaging.system": "nats", "messaging.consumer.group.name": consumer}
            | attributes,
        )
        for headers, attributes in messages
    ]
    current = (
        spans[0]
        if len(spans) == 1
        else TRACER.start_span(
            f"{consumer} batch",
            kind=SpanKind.CONSUMER,
            links=[Link(s.get_span_context()) for s in spans],
            attributes={"messaging.batch.message_count": len(spans)},
        )
    )
    try:
        with trace.use_span(current, end_on_exit=False, record_exception=True):
            yield
    except BaseException as exc:
        for span in {*spans, current}:
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        raise
    finally:
        for span in {*spans, current}:
            span.end()
