"""Request/reply client: send a command, get a `Reply` back, or a `TransportFailure`.

Two kinds of failure are kept apart, because only one may be retried blindly:

* a service *answered* with a typed error (`Reply.error`, `CommandFailed`):
  even one whose code ends in `_unavailable` (say `media_backend_unavailable`)
  is a decision the service took and stays as it is;
* the command got no answer (`TransportFailure`): NATS is disconnected, no
  replica listens, the answer did not come in time, or it was unreadable.

Every command carries an absolute deadline (`DEADLINE_HEADER`, epoch ms) set
from the caller's timeout.  The answering side refuses a command past its
deadline without running it (services/runtime/commands.py), so a request NATS
buffered while disconnected and delivered later is never executed after its
caller gave up.  The caller also refuses to publish while its connection is
down, so nothing is buffered in the first place.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from faststream.nats import NatsBroker
from nats.errors import ConnectionClosedError, NoRespondersError, OutboundBufferLimitError
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeoutError
from opentelemetry.trace import SpanKind
from pydantic import BaseModel
from pydantic_core import to_json

from contracts.commands import DEADLINE_HEADER, CommandError, ErrorCode, Reply, command_subject
from services.runtime.telemetry import TRACER, inject, tracing_enabled


class CommandFailed(Exception):
    """A command came back with an error (or could not be delivered)."""

    def __init__(self, error: CommandError) -> None:
        super().__init__(error.message)
        self.error = error


class TransportFailure(CommandFailed):
    """The command got no answer; `component` names what is down (`nats` or the service).

    `delivered` says whether the command may have reached a service (a timeout
    or an unreadable reply): only commands that are safe to repeat may then be
    retried.  When NATS was disconnected or nobody listened it was not run.
    """

    def __init__(self, component: str, reason: str, message: str, *, delivered: bool) -> None:
        super().__init__(
            CommandError(
                kind=ErrorCode.UNAVAILABLE, error=f"{component}_unavailable", message=message
            )
        )
        self.component = component
        self.reason = reason
        self.delivered = delivered


def deadline_header(timeout: float, now: float | None = None) -> dict[str, str]:
    """The header saying until when (epoch ms) the command may start running."""
    at = time.time() if now is None else now
    return {DEADLINE_HEADER: str(int((at + timeout) * 1000))}


def nats_connected(broker: NatsBroker) -> bool:
    """Whether the broker's NATS connection is up right now (not connecting or reconnecting)."""
    connection = broker._connection
    return bool(connection is not None and connection.is_connected)


def _nats_down(service: str) -> TransportFailure:
    return TransportFailure(
        "nats",
        "disconnected",
        f"NATS is unreachable; the {service} command was not sent",
        delivered=False,
    )


async def send(
    broker: NatsBroker,
    service: str,
    verb: str,
    payload: BaseModel | dict[str, Any] | None = None,
    *,
    timeout: float = 5.0,
) -> Reply:
    """Send `meetplane.cmd.<service>.<verb>` and return the service's `Reply`.

    Raises `TransportFailure` when no answer came; never waits past `timeout`.
    """
    data = (
        payload.model_dump_json().encode()
        if isinstance(payload, BaseModel)
        else to_json(payload or {})  # as faststream encoded it: dates, UUIDs included
    )
    if not nats_connected(broker):
        # nats-py would buffer the request and flush it on reconnect, long after
        # our caller was told it failed.
        raise _nats_down(service)
    connection = broker._connection
    assert connection is not None
    subject = command_subject(service, verb)
    headers = deadline_header(timeout)
    traced = tracing_enabled()
    span = (
        TRACER.start_as_current_span(f"{subject} request", kind=SpanKind.CLIENT)
        if traced
        else contextlib.nullcontext()
    )
    try:
        # nats-py's own request, not faststream's: its middlewares cost more CPU
        # than the request. The trace context goes in the headers as before.
        with span:
            if traced:
                inject(headers)
            message = await connection.request(subject, data, timeout=timeout, headers=headers)
    except (OutboundBufferLimitError, ConnectionClosedError):
        raise _nats_down(service) from None
    except NoRespondersError:
        raise TransportFailure(
            service, "no_responders", f"the {service} service is not running", delivered=False
        ) from None
    except (NatsTimeoutError, TimeoutError):
        if not nats_connected(broker):
            raise TransportFailure(
                "nats",
                "disconnected",
                f"NATS went away while the {service} command was pending",
                delivered=True,
            ) from None
        raise TransportFailure(
            service,
            "timeout",
            f"the {service} service did not answer in {timeout:g}s",
            delivered=True,
        ) from None
    except NatsError as exc:
        # Any other client-side NATS failure (a reconnect in progress, a slow
        # consumer): the request may have gone out, so it counts as delivered.
        raise TransportFailure(
            "nats",
            type(exc).__name__,
            f"NATS failed while the {service} command was pending: {exc}",
            delivered=True,
        ) from None
    try:
        return Reply.model_validate_json(message.data)  # parse and validate in one pass
    except ValueError:
        raise TransportFailure(
            service, "unreadable", f"the {service} service sent an unreadable reply", delivered=True
        ) from None


async def request(
    broker: NatsBroker,
    service: str,
    verb: str,
    payload: BaseModel | dict[str, Any] | None = None,
    *,
    timeout: float = 5.0,
) -> Reply:
    """Like `send`, with a transport failure returned as a failed `Reply` (never raises).

    For callers that treat "no answer" like any other failure (pings, sweeps).
    """
    try:
        return await send(broker, service, verb, payload, timeout=timeout)
    except TransportFailure as exc:
        return Reply.failure(exc.error)


async def call(
    broker: NatsBroker,
    service: str,
    verb: str,
    payload: BaseModel | dict[str, Any] | None = None,
    *,
    timeout: float = 5.0,
) -> Any:
    """Return the command's result; raise `CommandFailed` (or `TransportFailure`)."""
    reply = await send(broker, service, verb, payload, timeout=timeout)
    if not reply.ok:
        assert reply.error is not None
        raise CommandFailed(reply.error)
    return reply.result
