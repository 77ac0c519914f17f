"""structlog setup: JSON lines in production, a readable console in development."""

from __future__ import annotations

import logging
import sys

import structlog

from services.runtime.telemetry import add_trace_ids, configure_tracing


def configure_logging(fmt: str = "console", level: str = "INFO", service: str = "") -> None:
    """Configure structlog and the stdlib root logger once per process.

    Library logs (uvicorn, nats, faststream) go through the same renderer so a
    production log stream is uniformly JSON.  Lines logged inside a span carry
    its `trace_id` and `span_id`; with `service`, OTLP trace export is set up
    too when the `OTEL_*` variables ask for it (`services.runtime.telemetry`).
    """
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        add_trace_ids,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(foreign_pre_chain=shared, processor=renderer)
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("faststream", "nats", "uvicorn.access", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if service:
        structlog.contextvars.bind_contextvars(service=service)
        # Every service process configures logging first thing: tracing comes with it.
        configure_tracing(service)


def get_logger(name: str = "meetplane") -> structlog.stdlib.BoundLogger:
    """A structlog logger; bind `room_id`, `meeting_id`, `event_id` where known."""
    return structlog.get_logger(name)
