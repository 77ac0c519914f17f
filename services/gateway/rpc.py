"""The gateway's NATS request/reply client: results or `ApiError`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from faststream.nats import NatsBroker
from pydantic import BaseModel

from services.gateway.errors import ApiError
from services.runtime.rpc import request


class Rpc:
    """Sends commands to services and maps typed errors to HTTP."""

    def __init__(self, broker: NatsBroker, timeout: float) -> None:
        self.broker = broker
        self.timeout = timeout

    async def __call__(
        self, service: str, verb: str, payload: BaseModel | dict[str, Any] | None = None
    ) -> Any:
        reply = await request(self.broker, service, verb, payload, timeout=self.timeout)
        if not reply.ok:
            assert reply.error is not None
            raise ApiError.from_command(reply.error)
        return reply.result


def _rpc(request: Request) -> Rpc:
    rpc: Rpc = request.app.state.rpc
    return rpc


RpcDep = Annotated[Rpc, Depends(_rpc)]
