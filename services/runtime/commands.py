"""Request/reply command handlers: parse, call, reply with a result or a typed error."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from faststream.nats import NatsBroker
from pydantic import BaseModel, ValidationError

from contracts.commands import (
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

log = get_logger("meetplane.commands")

RequestT = TypeVar("RequestT", bound=BaseModel)
ErrorTable = Mapping[type[Exception], ErrorCode]

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
        return Pong(service=self.service, instance=INSTANCE_ID)

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
            return (await self.dispatch(verb, request_model, handler, body)).model_dump(mode="json")

    async def dispatch(
        self,
        verb: str,
        request_model: type[RequestT],
        handler: Callable[[RequestT], Awaitable[Any]],
        body: Any,
    ) -> Reply:
        """Parse and run one command; never raises."""
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
                error = CommandError(
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
