"""The one retry policy of meetplane: exponential backoff with jitter, by tenacity.

Every loop that retries (consumers, log followers, side effects, the outbox)
takes its delays from here, so a change of policy is made once.  Which errors
are worth retrying without end is decided here too: an infrastructure fault
(a store that is locked or unreachable, NATS not answering, a peer service down)
passes; anything else is a defect of the message or of the code, and a bounded
number of tries is enough to say so.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_any,
    stop_never,
    wait_exponential_jitter,
)
from tenacity.stop import stop_base

T = TypeVar("T")


def backoff(initial: float = 0.1, maximum: float = 10.0) -> wait_exponential_jitter:
    """Exponential backoff from `initial` seconds, capped at `maximum`, with jitter."""
    return wait_exponential_jitter(initial=initial, max=maximum, jitter=initial)


def is_transient(exc: BaseException) -> bool:
    """Whether an error is an infrastructure fault that goes away by itself.

    Store lock contention or a lost connection, NATS timeouts and missing
    responders, JetStream unavailable while it elects, a peer service reporting
    itself unavailable, network errors.
    """
    from eventsourcing.persistence import InterfaceError, OperationalError
    from nats.errors import ConnectionClosedError, NoRespondersError
    from nats.errors import TimeoutError as NatsTimeoutError
    from nats.js.errors import ServiceUnavailableError

    from contracts.commands import ErrorCode

    if isinstance(
        exc,
        OperationalError
        | InterfaceError
        | sqlite3.OperationalError
        | NoRespondersError
        | NatsTimeoutError
        | ConnectionClosedError
        | ServiceUnavailableError  # JetStream electing a leader
        | ConnectionError
        | TimeoutError,
    ):
        return True
    try:
        import sqlalchemy.exc

        if isinstance(exc, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError):
            return True
    except ImportError:  # pragma: no cover
        pass
    error = getattr(exc, "error", None)  # services.runtime.rpc.CommandFailed
    return getattr(error, "kind", None) == ErrorCode.UNAVAILABLE


@dataclass(frozen=True)
class Patience:
    """How long a failing unit of work is retried before it is given up (parked).

    `attempts` tries for an error that is not transient; up to `transient_seconds`
    of tries while the error is transient (a dependency that is down).
    """

    attempts: int = 5
    transient_seconds: float = 600.0
    initial_delay: float = 0.1
    max_delay: float = 5.0

    def stop(self) -> stop_base:
        """tenacity stop condition implementing the two bounds."""
        attempts, transient = self.attempts, self.transient_seconds

        class _Stop(stop_base):
            def __call__(self, state: RetryCallState) -> bool:
                outcome = state.outcome
                error = outcome.exception() if outcome is not None else None
                if error is not None and is_transient(error):
                    return (state.seconds_since_start or 0.0) >= transient
                return state.attempt_number >= attempts

        return _Stop()


async def retry_async(
    action: Callable[[], Awaitable[T]],
    patience: Patience,
    on_retry: Callable[[BaseException, int, float], None] | None = None,
) -> T:
    """Run `action` until it succeeds or `patience` runs out (then its last error is raised)."""

    def before_sleep(state: RetryCallState) -> None:
        if on_retry is not None and state.outcome is not None:
            error = state.outcome.exception()
            assert error is not None
            delay = state.next_action.sleep if state.next_action else 0.0
            on_retry(error, state.attempt_number, delay)

    retrying = AsyncRetrying(
        stop=patience.stop(),
        wait=backoff(patience.initial_delay, patience.max_delay),
        retry=retry_if_exception(lambda e: not isinstance(e, asyncio.CancelledError)),
        before_sleep=before_sleep,
        reraise=True,
    )
    return await retrying(_awaited(action))


def _awaited(action: Callable[[], Awaitable[T]]) -> Callable[[], Awaitable[T]]:
    # tenacity awaits only coroutine *functions*; a lambda returning a coroutine would
    # be taken for a synchronous call and its coroutine never awaited.
    async def call() -> T:
        return await action()

    return call


async def retry_forever(
    action: Callable[[], Awaitable[T]],
    on_retry: Callable[[BaseException, int, float], None] | None = None,
    initial: float = 0.2,
    maximum: float = 10.0,
) -> T:
    """Run `action` until it succeeds (side effects that must happen eventually)."""

    def before_sleep(state: RetryCallState) -> None:
        if on_retry is not None and state.outcome is not None:
            error = state.outcome.exception()
            assert error is not None
            delay = state.next_action.sleep if state.next_action else 0.0
            on_retry(error, state.attempt_number, delay)

    retrying = AsyncRetrying(
        stop=stop_any(stop_never),
        wait=backoff(initial, maximum),
        retry=retry_if_exception(lambda e: not isinstance(e, asyncio.CancelledError)),
        before_sleep=before_sleep,
        reraise=True,
    )
    return await retrying(_awaited(action))


def try_then_retry(
    action: Callable[[], T],
    retryable: Callable[[BaseException], bool],
    retrying: Callable[[], Retrying],
) -> T:
    """`retrying()(action)`, without building tenacity's loop when the first try succeeds.

    tenacity's state for one call costs 30 to 50 µs of CPU (measured), more than
    many of the store calls it wraps, and nearly every call succeeds at once.  A
    first try that fails with a `retryable` error is replayed as tenacity's first
    attempt (its error re-raised, not the action run again), so the attempts,
    waits and logging are the policy's own.
    """
    try:
        return action()
    except Exception as error:
        if not retryable(error):
            raise
        failed: list[BaseException] = [error]

    def attempt() -> T:
        if failed:
            raise failed.pop()
        return action()

    return retrying()(attempt)


async def try_then_retry_async(
    action: Callable[[], Awaitable[T]],
    retryable: Callable[[BaseException], bool],
    retrying: Callable[[], AsyncRetrying],
) -> T:
    """`try_then_retry` for a coroutine function."""
    try:
        return await action()
    except Exception as error:
        if not retryable(error):
            raise
        failed: list[BaseException] = [error]

    async def attempt() -> T:
        if failed:
            raise failed.pop()
        return await action()

    return await retrying()(attempt)
