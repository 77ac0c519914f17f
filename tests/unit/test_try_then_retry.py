"""The retry policy's fast path: tenacity only after a first try failed, with the same policy."""

from __future__ import annotations

import asyncio

import pytest
from tenacity import AsyncRetrying, Retrying, retry_if_exception_type, stop_after_attempt

from services.runtime.retry import try_then_retry, try_then_retry_async


class Flaky(Exception):
    """A retryable failure."""


def _failing(times: int, calls: list[int]) -> object:
    def action() -> str:
        calls.append(1)
        if len(calls) <= times:
            raise Flaky(f"try {len(calls)}")
        return "done"

    return action


def _policy(attempts: int, built: list[int]) -> object:
    def retrying() -> Retrying:
        built.append(1)
        return Retrying(
            stop=stop_after_attempt(attempts),
            retry=retry_if_exception_type(Flaky),
            reraise=True,
        )

    return retrying


def _retryable(error: BaseException) -> bool:
    return isinstance(error, Flaky)


def test_a_first_try_that_succeeds_builds_no_retry_loop() -> None:
    calls: list[int] = []
    built: list[int] = []
    assert try_then_retry(_failing(0, calls), _retryable, _policy(3, built)) == "done"  # type: ignore[arg-type]
    assert (len(calls), len(built)) == (1, 0)


def test_the_failed_first_try_counts_as_the_policys_first_attempt() -> None:
    calls: list[int] = []
    built: list[int] = []
    assert try_then_retry(_failing(2, calls), _retryable, _policy(3, built)) == "done"  # type: ignore[arg-type]
    assert (len(calls), len(built)) == (3, 1)  # tries 1 and 2 failed, the third (last) succeeded

    calls.clear()
    with pytest.raises(Flaky, match="try 3"):
        try_then_retry(_failing(3, calls), _retryable, _policy(3, built))  # type: ignore[arg-type]
    assert len(calls) == 3  # never a fourth try: the replayed failure used up one attempt


def test_an_error_that_is_not_retryable_is_raised_at_once() -> None:
    built: list[int] = []

    def broken() -> None:
        raise ValueError("a defect")

    with pytest.raises(ValueError, match="a defect"):
        try_then_retry(broken, _retryable, _policy(3, built))  # type: ignore[arg-type]
    assert built == []


def test_the_async_fast_path_keeps_the_policy_too() -> None:
    calls: list[int] = []
    built: list[int] = []

    async def action() -> str:
        calls.append(1)
        if len(calls) <= 1:
            raise Flaky("once")
        return "done"

    def retrying() -> AsyncRetrying:
        built.append(1)
        return AsyncRetrying(
            stop=stop_after_attempt(2), retry=retry_if_exception_type(Flaky), reraise=True
        )

    assert asyncio.run(try_then_retry_async(action, _retryable, retrying)) == "done"
    assert (len(calls), len(built)) == (2, 1)

    assert asyncio.run(try_then_retry_async(action, _retryable, retrying)) == "done"
    assert (len(calls), len(built)) == (3, 1)  # succeeded at once: no loop built
