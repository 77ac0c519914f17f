"""Replaceable time: services ask a `Clock`, never `datetime.now()` deep inside logic."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Milliseconds since the Unix epoch (the API's time unit)."""

    def now_ms(self) -> int:
        """Current time in ms."""
        ...


class SystemClock:
    """The wall clock."""

    def now_ms(self) -> int:
        """Current wall-clock time in ms."""
        return time.time_ns() // 1_000_000


class ManualClock:
    """A clock tests move by hand."""

    def __init__(self, start_ms: int = 1_700_000_000_000) -> None:
        self.value = start_ms

    def now_ms(self) -> int:
        """The time the test set."""
        return self.value

    def advance(self, ms: int) -> None:
        """Move time forward."""
        self.value += ms
