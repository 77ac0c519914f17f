"""Rate limits of the gateway, in one module: failed sign-ins per user and per client address.

Counters live in a NATS KV bucket (`services.runtime.kv_limits`), so every
gateway replica counts the same failures.  Only failures count; a limited
caller gets 429 with `Retry-After` before the password is even checked.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse
from limits.aio.strategies import FixedWindowRateLimiter

from services.gateway.errors import ApiError
from services.runtime.kv_limits import NatsKVStorage


class LoginLimits:
    """Failed sign-ins allowed per user id and per client address."""

    def __init__(self, storage: NatsKVStorage, per_user: str, per_address: str) -> None:
        self.limiter = FixedWindowRateLimiter(storage)
        self.rules: list[tuple[RateLimitItem, str]] = [
            (parse(per_user), "login-user"),
            (parse(per_address), "login-address"),
        ]

    async def check(self, user_id: str, address: str) -> None:
        """429 with Retry-After when the user or the address used up its failures."""
        for (item, scope), who in zip(self.rules, (user_id, address), strict=True):
            if not await self.limiter.test(item, scope, who):
                stats = await self.limiter.get_window_stats(item, scope, who)
                retry = max(1, math.ceil(stats.reset_time - time.time()))
                raise ApiError(
                    429,
                    "Too Many Requests",
                    "Too many failed sign-ins, please try again later",
                    headers={"Retry-After": str(retry)},
                )

    async def failed(self, user_id: str, address: str) -> None:
        """Count one failed sign-in against the user and the address."""
        for (item, scope), who in zip(self.rules, (user_id, address), strict=True):
            await self.limiter.hit(item, scope, who)
