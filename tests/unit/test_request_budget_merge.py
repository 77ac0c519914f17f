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
