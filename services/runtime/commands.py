"""Request/reply command handlers: parse, call, reply with a result or a typed error."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from faststream.nats import NatsBroker
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode
from prometheus_client import Counter, Gauge, Histogram
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
from services.runtime.telemetry import TRACER, extract, tracing_enabled

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

COMMANDS_IN_PROCESS = Gauge(
    "meetplane_commands_in_process",
    "Commands a service is running now (received, not yet answered)",
    ["service"],
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


@dataclass(frozen=True)
class _Route:
    verb: str
    request_model: type[BaseModel]
    handler: Callable[[Any], Awaitable[Any]]


class CommandRouter:
    """Answers a service's commands, in its queue group, on the broker's NATS connection.

    Handlers are registered before the service starts; `bind()` subscribes them
    (the service runs it before it tells anyone it is up) and `close()` stops
    taking commands and waits for those in flight (before the stores close).

    The subscriptions are nats-py's own, not faststream subscribers: faststream's
    per-message path (middlewares, dependency injection, its response publisher)
    cost more CPU than the command itself on the busiest commands. What it gave
    is kept here: the trace context from the caller's headers, the command's
    metrics (`meetplane_commands_*`), a bounded number of commands in progress,
    and, for the AsyncAPI document only, faststream declarations (`document()`).
    """

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
        self.routes: dict[str, _Route] = {}
        self._subscriptions: list[Subscription] = []
        self._in_flight: set[asyncio.Task[None]] = set()
        self._slots: asyncio.Semaphore | None = None
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
        """Answer `meetplane.cmd.<service>.<verb>` with `handler(request)` (from `bind()` on)."""
        if self._subscriptions:
            raise RuntimeError(f"{self.service}.{verb} registered after the router was bound")
        self.routes[verb] = _Route(verb, request_model, handler)

    def document(self) -> None:
        """Declare every command on the broker for its AsyncAPI document (never started)."""
        for verb in self.routes:
            subject = command_subject(self.service, verb)

            @self.broker.subscriber(subject, queue=queue_group(self.service), title=subject)
            async def _handle(body: Any) -> dict[str, Any]:  # pragma: no cover - spec only
                raise NotImplementedError

    async def bind(self) -> None:
        """Subscribe every registered command on the broker's connection."""
        connection = self.broker._connection
        if connection is None:
            raise RuntimeError("the broker is not connected")
        self._slots = asyncio.Semaphore(self.concurrency)
        for route in self.routes.values():
            self._subscriptions.append(
                await connection.subscribe(
                    command_subject(self.service, route.verb),
                    queue=queue_group(self.service),
                    cb=self._receiver(route),
                )
            )
        await connection.flush()

    def _receiver(self, route: _Route) -> Callable[[Msg], Awaitable[None]]:
        async def receive(message: Msg) -> None:
            # nats-py runs a subscription's callback one message at a time: each
            # command gets its own task, at most `concurrency` of them at once.
            assert self._slots is not None
            await self._slots.acquire()
            task = asyncio.create_task(self._answer(route, message))
            self._in_flight.add(task)
            task.add_done_callback(self._finished)

        return receive

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        assert self._slots is not None
        self._slots.release()

    async def _answer(self, route: _Route, message: Msg) -> None:
        COMMANDS_IN_PROCESS.labels(self.service).inc()
        try:
            if expired(message.headers):
                # The caller gave up (NATS may have held the request through a
                # reconnect): running it now would act on a request reported failed.
                log.warning("command.expired", service=self.service, verb=route.verb)
                COMMANDS.labels(self.service, route.verb, "expired").inc()
                reply = Reply.failure(DEADLINE_EXCEEDED)
            else:
                reply = await self.dispatch(
                    route.verb,
                    route.request_model,
                    route.handler,
                    message.data,
                    parent=extract(message.headers) if tracing_enabled() else None,
                )
            if message.reply:
                # Not `message.respond`: it copies the request's headers into the reply.
                connection = self.broker._connection
                assert connection is not None
                await connection.publish(message.reply, reply.model_dump_json().encode())
        except Exception:
            # The connection closed under the reply: the caller's timeout tells it.
            log.exception("command.reply_failed", service=self.service, verb=route.verb)
        finally:
            COMMANDS_IN_PROCESS.labels(self.service).dec()

    async def close(self, grace: float = 3.0) -> None:
        """Stop taking commands; wait up to `grace` seconds for those in progress.

        Draining, not unsubscribing: a command the client had already received
        is still answered, not dropped for its caller to time out on.
        """
        for subscription in self._subscriptions:
            with contextlib.suppress(Exception):
                await subscription.drain()
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=grace)

    async def dispatch(
        self,
        verb: str,
        request_model: type[RequestT],
        handler: Callable[[RequestT], Awaitable[Any]],
        body: Any,
        parent: Context | None = None,
    ) -> Reply:
        """Parse and run one command in its span, counted by outcome; never raises.

        `parent` is the caller's trace context, from the command's headers.
        """
        started = time.perf_counter()
        if tracing_enabled():
            with TRACER.start_as_current_span(
                f"{self.service}.{verb}",
                context=parent,
                kind=SpanKind.SERVER,
                attributes={"meetplane.service": self.service, "meetplane.verb": verb},
            ) as span:
                reply = await self._dispatch(verb, request_model, handler, body)
                error = None if reply.ok else reply.error
                span.set_attribute("meetplane.outcome", _outcome(reply))
                if error is not None and error.kind is ErrorCode.UNAVAILABLE:
                    span.set_status(Status(StatusCode.ERROR, error.error))
        else:  # no span: the no-op tracer's still attached a context per command
            reply = await self._dispatch(verb, request_model, handler, body)
        COMMANDS.labels(self.service, verb, _outcome(reply)).inc()
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
            if isinstance(body, bytes):
                # Parsed and validated in one pass; text that is not JSON is `invalid` too.
                request = request_model.model_validate_json(body or b"{}")
            else:
                request = request_model.model_validate(body if body not in (None, "") else {})
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


def _outcome(reply: Reply) -> str:
    """A reply's outcome label: ok, or its error kind."""
    return "ok" if reply.ok or reply.error is None else reply.error.kind.value
