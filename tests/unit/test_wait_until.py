"""The sync polling helper of tests/support: what it returns, ignores and raises."""

from __future__ import annotations

import itertools

import pytest

from tests.support.services import wait_until


def test_returns_the_first_truthy_value() -> None:
    calls = itertools.count()
    assert wait_until(lambda: next(calls) >= 3 and "done", 5, 0.001) == "done"


def test_ignored_exceptions_mean_not_yet_others_propagate() -> None:
    calls = itertools.count()

    def flaky() -> bool:
        if next(calls) < 2:
            raise ConnectionError("starting")
        return True

    assert wait_until(flaky, 5, 0.001, ignore=(ConnectionError,))

    def broken() -> bool:
        raise RuntimeError("the process exited")

    with pytest.raises(RuntimeError, match="exited"):
        wait_until(broken, 5, 0.001, ignore=(ConnectionError,))


def test_times_out_naming_what_and_the_last_error() -> None:
    def never() -> bool:
        raise ConnectionError("refused")

    with pytest.raises(TimeoutError, match=r"gateway not ready.*refused"):
        wait_until(
            never, 0.05, 0.01, ignore=(ConnectionError,), message=lambda: "gateway not ready"
        )
