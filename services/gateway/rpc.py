"""The gateway's NATS request/reply client: results or `ApiError`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from faststream.nats import NatsBroker
from pydantic import BaseModel
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from contracts.commands import Reply
from services.gateway.errors import ApiError
from services.runtime.logging import get_logger
from services.runtime.retry import try_then_retry_async
from services.runtime.rpc import TransportFailure, send

log = get_logger("meetplane.gateway.rpc")


class Rpc:
    """Sends commands to services and maps typed errors to HTTP.

    Only a `TransportFailure` (no answer) is ever retried; an answer is final,
    whatever its error code.  A command that surely did not run (NATS was
    disconnected, no replica listened) is retried always; one that may have run
    (it timed out) only when the caller says repeating it is safe: reads,
    updates that set a value, and commands carrying a `commandId` the service
    deduplicates.
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
        def retryable(exc: BaseException) -> bool:
            return isinstance(exc, TransportFailure) and (retry or not exc.delivered)

        def before_sleep(state: Any) -> None:
            exc = state.outcome.exception()
            log.warning(
                "rpc.retry",
                service=service,
                verb=verb,
                attempt=state.attempt_number,
                component=exc.component,
                reason=exc.reason,
            )

        def retrying() -> AsyncRetrying:
            return AsyncRetrying(
                stop=stop_after_attempt(self.attempts),
                wait=wait_exponential(multiplier=0.1, max=1.0),
                retry=retry_if_exception(retryable),
                before_sleep=before_sleep,
                reraise=True,
            )

        async def attempt() -> Reply:
            return await send(self.broker, service, verb, payload, timeout=self.timeout)

        try:
            reply = await try_then_retry_async(attempt, retryable, retrying)
        except TransportFailure as exc:
            raise ApiError.from_command(exc.error) from None
        if not reply.ok:
            assert reply.error is not None
            raise ApiError.from_command(reply.error)
        return reply.result

    async def retrying(
        self, service: str, verb: str, payload: BaseModel | dict[str, Any] | None = None
    ) -> Any:
        """`__call__` with retries: only for commands that are safe to repeat."""
        return await self(service, verb, payload, retry=True)


async def _rpc(request: Request) -> Rpc:
    """Async: FastAPI runs a sync dependency in its thread pool, one hop per request."""
    rpc: Rpc = request.app.state.rpc
    return rpc


RpcDep = Annotated[Rpc, Depends(_rpc)]
