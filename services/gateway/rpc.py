"""The gateway's NATS request/reply client: results or `ApiError`."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import Depends, Request
from faststream.nats import NatsBroker
from pydantic import BaseModel

from services.gateway.errors import ApiError
from services.runtime.logging import get_logger
from services.runtime.rpc import request

log = get_logger("meetplane.gateway.rpc")


TRANSPORT_FAILURE = "_unavailable"  # error code suffix of timeouts / no responders


class Rpc:
    """Sends commands to services and maps typed errors to HTTP.

    A command that got no answer (the replica handling it died, or none was
    reachable) is retried when the caller says it is safe: reads, updates that
    set a value, and commands carrying a `commandId` the service deduplicates.
    """

    def __init__(self, broker: NatsBroker, timeout: float, attempts: int = 3) -> None:
        self.broker = broker
        self.timeout = timeout
        self.attempts = attempts

    async def __call__(
        self,
        service: str,
        verb: str,
        payload: BaseModel | dict[str, Any] | None = None,
        *,
        retry: bool = False,
    ) -> Any:
        attempts = self.attempts if retry else 1
        for attempt in range(1, attempts + 1):
            reply = await request(self.broker, service, verb, payload, timeout=self.timeout)
            if reply.ok:
                return reply.result
            assert reply.error is not None
            transport = reply.error.error.endswith(TRANSPORT_FAILURE)
            if not transport or attempt == attempts:
                raise ApiError.from_command(reply.error)
            log.warning("rpc.retry", service=service, verb=verb, attempt=attempt)
            await asyncio.sleep(0.1 * attempt)
        raise AssertionError("unreachable")

    async def retrying(
        self, service: str, verb: str, payload: BaseModel | dict[str, Any] | None = None
    ) -> Any:
        """`__call__` with retries: only for commands that are safe to repeat."""
        return await self(service, verb, payload, retry=True)


def _rpc(request: Request) -> Rpc:
    rpc: Rpc = request.app.state.rpc
    return rpc


RpcDep = Annotated[Rpc, Depends(_rpc)]
