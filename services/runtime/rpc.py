"""Request/reply client: send a command, get a `Reply` back (or a typed `unavailable`)."""

from __future__ import annotations

import json
from typing import Any

from faststream.nats import NatsBroker
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from pydantic import BaseModel

from contracts.commands import CommandError, ErrorCode, Reply, command_subject


class CommandFailed(Exception):
    """A command came back with an error (or could not be delivered)."""

    def __init__(self, error: CommandError) -> None:
        super().__init__(error.message)
        self.error = error


async def request(
    broker: NatsBroker,
    service: str,
    verb: str,
    payload: BaseModel | dict[str, Any] | None = None,
    *,
    timeout: float = 5.0,
) -> Reply:
    """Send `meetplane.cmd.<service>.<verb>` and parse the reply; never hangs past `timeout`."""
    body: Any = (
        payload.model_dump(mode="json") if isinstance(payload, BaseModel) else (payload or {})
    )
    subject = command_subject(service, verb)
    try:
        message = await broker.request(body, subject, timeout=timeout)
    except NoRespondersError:
        return _unavailable(service, f"the {service} service is not running")
    except (NatsTimeoutError, TimeoutError):
        return _unavailable(service, f"the {service} service did not answer in {timeout:g}s")
    raw = message.body
    try:
        return Reply.model_validate(json.loads(raw))
    except ValueError:
        return _unavailable(service, f"the {service} service sent an unreadable reply")


async def call(
    broker: NatsBroker,
    service: str,
    verb: str,
    payload: BaseModel | dict[str, Any] | None = None,
    *,
    timeout: float = 5.0,
) -> Any:
    """Like `request`, but return the result or raise `CommandFailed`."""
    reply = await request(broker, service, verb, payload, timeout=timeout)
    if not reply.ok:
        assert reply.error is not None
        raise CommandFailed(reply.error)
    return reply.result


def _unavailable(service: str, message: str) -> Reply:
    return Reply.failure(
        CommandError(kind=ErrorCode.UNAVAILABLE, error=f"{service}_unavailable", message=message)
    )
