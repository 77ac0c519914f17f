"""Request/reply command handlers: parse, call, reply with a result or a typed error."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from faststream.nats import NatsBroker
from opentelemetry.trace import SpanKind, Status, StatusCode
from prometheus_client import Counter, Histogram
from pydantic import BaseModel, ValidationError

from contracts.commands import (
    DEADLINE_HEADER,
    CommandError,
    ErrorCode,
    ErrorDetail,
    Ping,
    Pong,
    Reply,
    command_subject,
    queue_group,
)
from services.runtime.commits import COMMIT_MARK, CommitMark
from services.runtime.logging import get_logger
from services.runtime.rpc import CommandFailed
from services.runtime.telemetry import TRACER

log = get_logger("meetplane.commands")

COMMANDS = Counter(
    "meetplane_commands_total",
    "Commands a service answered, by verb and outcome (ok, an error kind, or expired)",
    ["service", "verb", "outcome"],
)
COMMAND_SECONDS = Histogram(
    "meetplane_command_seconds",
    "Time from receiving a command to its reply (includes waiting for its events' publication)",
    ["service", "verb"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

RequestT = TypeVar("RequestT", bound=BaseModel)
ErrorTable = Mapping[type[Exception], ErrorCode]
# A dependency probe reported in the ping reply: True while the dependency answers.
DependencyCheck = Callable[[], Awaitable[bool]]
# Where `RunningService` leaves the service's probes for the ping handler (broker context).
CHECKS_CONTEXT_KEY = "meetplane_dependency_checks"
CHECK_TIMEOUT = 0.5  # well inside the gateway's ping timeout

INSTANCE_ID = f"{socket.gethostname()}-{uuid.uuid4().hex[:6]}"


def _is_union_tag(part: object) -> bool:
    # pydantic adds the union member it tried ("literal[...]", "AdvancedEncoding",
    # "function-after[...]") to the location; users know the field, not our types.
    text = str(part)
    return "[" in text or (text[:1].isupper() and not isinstance(part, int))


def field_path(loc: Sequence[Any]) -> str:
    """A dotted field name from a pydantic error location, without union tags or `body`."""
    parts = [str(p) for p in loc if not _is_union_tag(p)]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:] or parts
    return ".".join(parts) or "body"


def validation_error(exc: ValidationError) -> CommandError:
    """A pydantic error as an `invalid` command error naming each field."""
    details = [
        ErrorDetail(field=field_path(err["loc"]), message=err["msg"])
        for err in exc.errors(include_url=False)
    ]
    return CommandError(
        kind=ErrorCode.INVALID,
        error="invalid_request",
        message="; ".join(f"{d.field}: {d.message}" for d in details),
        details=details,
    )


def to_command_error(exc: Exception, table: ErrorTable) -> CommandError | None:
    """Map a domain exception with the service's table; None if it is not a domain error.

    The exception's `error` attribute (when present) is the API error code,
    its first argument the message, `field` (when present) the field it is about.
    """
    for cls in type(exc).__mro__:
        kind = table.get(cls)
        if kind is not None:
            message = str(exc.args[0]) if exc.args else kind.value
            field = getattr(exc, "field", None)
            return CommandError(
                kind=kind,
                error=str(getattr(exc, "error", kind.value)),
                message=message,
                details=[ErrorDetail(field=field, message=message)] if field else [],
            )
    return None


def expired(headers: Mapping[str, Any] | None, now_ms: int | None = None) -> bool:
    """Whether a command's deadline (see `DEADLINE_HEADER`) has passed.

    A command without the header (an older caller, a hand-made request) has none.
    """
    raw = (headers or {}).get(DEADLINE_HEADER)
    if raw is None:
        return False
    try:
        deadline = int(raw)
    except (TypeError, ValueError):
        return False
    return (time.time_ns() // 1_000_000 if now_ms is None else now_ms) > deadline


DEADLINE_EXCEEDED = CommandError(
    kind=ErrorCode.UNAVAILABLE,
    error="deadline_exceeded",
    message="the command arrived after its caller stopped waiting; it was not run",
)


# A probe that is merely slow (a busy machine, a loaded S3) is not a dependency that
# is down: within this many seconds of its last success, a timeout keeps it "up".
# A refused connection or an error is "down" at once.
SLOW_IS_UP_SECONDS = 10.0
_last_up: dict[int, float] = {}


async def _probe(check: DependencyCheck) -> bool:
    key = id(check)
    try:
        up = bool(await asyncio.wait_for(check(), CHECK_TIMEOUT))
    except TimeoutError:
        return time.monotonic() - _last_up.get(key, float("-inf")) < SLOW_IS_UP_SECONDS
    except Exception:
        up = False
    if up:
        _last_up[key] = time.monotonic()
    else:
        _last_up.pop(key, None)
    return up


class CommandRouter:
    """Registers a service's command handlers on its broker, in its queue group."""

    def __init__(
        self,
        broker: NatsBroker,
        service: str,
        errors: ErrorTable,
        concurrency: int = 32,
        published: Callable[[int], Awaitable[bool]] | None = None,
    ) -> None:
        self.broker = broker
        self.service = service
        self.errors = errors
        # Waits until the outbox has published up to a position (read-your-writes).
        self.published = published
        # Commands run concurrently inside a replica; the event store's optimistic
        # concurrency (not handler serialisation) protects each aggregate.
        self.concurrency = concurrency
        self.register("ping", Ping, self._ping)

    async def _ping(self, _: Ping) -> Pong:
        checks: Mapping[str, DependencyCheck] = self.broker.context.get(CHECKS_CONTEXT_KEY) or {}
        results = await asyncio.gather(*(_probe(check) for check in checks.values()))
        return Pong(
            service=self.service,
            instance=INSTANCE_ID,
            checks=dict(zip(checks, results, strict=True)),
        )

    async def _dependency_down(self, verb: str) -> CommandError | None:
        """An unexpected failure while a dependency is down is named after it.

        "storage_unavailable: storage is unreachable" tells an operator what to
        fix; "internal_error" sends them to the logs.
        """
        checks: Mapping[str, DependencyCheck] = self.broker.context.get(CHECKS_CONTEXT_KEY) or {}
        for name, check in checks.items():
            if not await _probe(check):
                return CommandError(
                    kind=ErrorCode.UNAVAILABLE,
                    error=f"{name}_unavailable",
                    message=f"{name} is unreachable; {self.service}.{verb} could not complete",
                )
        return None

    def register(
        self,
        verb: str,
        request_model: type[RequestT],
        handler: Callable[[RequestT], Awaitable[Any]],
    ) -> None:
        """Answer `meetplane.cmd.<service>.<verb>` with `handler(request)`."""
        subject = command_subject(self.service, verb)

        @self.broker.subscriber(
            subject,
            queue=queue_group(self.service),
            title=subject,
            max_workers=self.concurrency,
        )
        async def _handle(body: Any) -> dict[str, Any]:
            # The message comes from the broker's context, not a `NatsMessage`
            # parameter: faststream resolves such a parameter with a sync call that
            # fast_depends runs in a worker thread, one needless hop per command.
            message = self.broker.context.get_local("message")
            if expired(message.headers):
                # The caller gave up (NATS may have held the request through a
                # reconnect): running it now would act on a request reported failed.
                log.warning("command.expired", service=self.service, verb=verb)
                COMMANDS.labels(self.service, verb, "expired").inc()
                return Reply.failure(DEADLINE_EXCEEDED).model_dump(mode="json")
            return (await self.dispatch(verb, request_model, handler, body)).model_dump(mode="json")

    async def dispatch(
        self,
        verb: str,
        request_model: type[RequestT],
        handler: Callable[[RequestT], Awaitable[Any]],
        body: Any,
    ) -> Reply:
        """Parse and run one command in its span, counted by outcome; never raises."""
        started = time.perf_counter()
        with TRACER.start_as_current_span(
            f"{self.service}.{verb}",
            kind=SpanKind.SERVER,
            attributes={"meetplane.service": self.service, "meetplane.verb": verb},
        ) as span:
            reply = await self._dispatch(verb, request_model, handler, body)
            error = None if reply.ok else reply.error
            outcome = "ok" if error is None else error.kind.value
            span.set_attribute("meetplane.outcome", outcome)
            if error is not None and error.kind is ErrorCode.UNAVAILABLE:
                span.set_status(Status(StatusCode.ERROR, error.error))
        COMMANDS.labels(self.service, verb, outcome).inc()
        COMMAND_SECONDS.labels(self.service, verb).observe(time.perf_counter() - started)
        return reply

    async def _dispatch(
        self,
        verb: str,
        request_model: type[RequestT],
        handler: Callable[[RequestT], Awaitable[Any]],
        body: Any,
    ) -> Reply:
        try:
            request = request_model.model_validate(body if body not in (None, b"", "") else {})
        except ValidationError as exc:
            return Reply.failure(validation_error(exc))
        mark = CommitMark()
        token = COMMIT_MARK.set(mark)
        try:
            result = await handler(request)
            if mark.position and self.published is not None:
                # Reply once the events this command committed are on the stream.
                await self.published(mark.position)
        except asyncio.CancelledError:
            raise
        except CommandFailed as exc:
            # A service this one asked failed: pass its typed error through unchanged.
            return Reply.failure(exc.error)
        except Exception as exc:
            error = to_command_error(exc, self.errors)
            if error is None:
                log.exception("command.failed", service=self.service, verb=verb)
                error = await self._dependency_down(verb) or CommandError(
                    kind=ErrorCode.UNAVAILABLE,
                    error="internal_error",
                    message=f"{self.service}.{verb} failed; see the service log",
                )
            return Reply.failure(error)
        finally:
            COMMIT_MARK.reset(token)
        if isinstance(result, BaseModel):
            result = result.model_dump(mode="json")
        return Reply.success(result)
