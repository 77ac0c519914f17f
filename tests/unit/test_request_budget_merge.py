"""Hits being merged into the shared counter still count on this replica.

The rate-limit test caught it under load: the merge moved the pending hits out,
and a request arriving while the KV increment was in flight saw neither them nor
a new total, so an eleventh request passed a budget of ten.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from services.gateway.errors import ApiError
from services.gateway.ratelimits import RequestBudget


class FlakyKV:
    """A shared counter whose first increment fails (a KV request that timed out)."""

    def __init__(self) -> None:
        self.count = 0
        self.failures = 1

    async def get(self, _key: str) -> int:
        return self.count

    async def get_expiry(self, _key: str) -> float:
        return time.time() + 60

    async def incr(self, _key: str, _expiry: int, amount: int = 1) -> int:
        if self.failures:
            self.failures -= 1
            raise TimeoutError
        self.count += amount
        return self.count


class SlowKV:
    """A shared counter whose increment waits until the test lets it finish."""

    def __init__(self) -> None:
        self.count = 0
        self.release = asyncio.Event()
        self.incrementing = asyncio.Event()

    async def get(self, _key: str) -> int:
        return self.count

    async def get_expiry(self, _key: str) -> float:
        return time.time() + 60

    async def incr(self, _key: str, _expiry: int, amount: int = 1) -> int:
        self.incrementing.set()
        await self.release.wait()
        self.count += amount
        return self.count


async def test_a_request_during_the_merge_counts_the_hits_being_merged() -> None:
    kv = SlowKV()
    budget = RequestBudget(kv, "10/minute", interval=3600)  # type: ignore[arg-type]
    for _ in range(10):
        await budget.hit("key")
    merge = asyncio.create_task(budget.flush())
    await kv.incrementing.wait()
    with pytest.raises(ApiError):
        await budget.hit("key")  # the ten hits are in flight to the KV
    kv.release.set()
    await merge
    assert kv.count == 10 and not budget.merging
    with pytest.raises(ApiError):
        await budget.hit("key")  # and now the shared total says so
    await budget.close()


async def test_a_failed_merge_is_tried_again_without_another_request() -> None:
    """A key over its budget admits nothing more: no later hit would start a merge."""
    kv = FlakyKV()
    budget = RequestBudget(kv, "2/minute", interval=0.01)  # type: ignore[arg-type]
    await budget.hit("key")
    await budget.hit("key")
    with pytest.raises(ApiError):
        await budget.hit("key")
    assert budget._flusher is not None
    await asyncio.wait_for(budget._flusher, 5)
    assert kv.count == 2 and not budget.pending
    await budget.close()
