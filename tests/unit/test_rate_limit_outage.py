"""A credential limit whose shared counters are unavailable lets the attempt through.

The replica test saw it: while a NATS node was killed, JetStream answered the
limiter's KV read with 503 "temporarily unavailable" and the gateway turned an
ordinary authenticated request into a 500.
"""

from __future__ import annotations

from typing import Any

import pytest
from limits.aio.strategies import FixedWindowRateLimiter
from nats.js.errors import ServiceUnavailableError

from services.gateway.errors import ApiError
from services.gateway.ratelimits import FailureLimit
from services.runtime.kv_limits import NatsKVStorage


class UnavailableKV:
    """A KV bucket while JetStream elects a leader: every call fails with its 503."""

    def __init__(self) -> None:
        self.calls = 0

    async def _unavailable(self, *_: Any, **__: Any) -> Any:
        self.calls += 1
        raise ServiceUnavailableError(
            code=503, err_code=10008, description="JetStream system temporarily unavailable"
        )

    get = create = update = delete = status = _unavailable


async def test_attempts_go_through_and_failures_are_not_fatal() -> None:
    kv = UnavailableKV()
    limiter = FixedWindowRateLimiter(NatsKVStorage(kv))  # type: ignore[arg-type]
    limit = FailureLimit(limiter, [("1/minute", "credential")], "too many")

    async def accepted() -> str:
        return "principal"

    assert await limit.guard(("10.0.0.1",), accepted, {401}) == "principal"

    async def refused() -> str:
        raise ApiError(401, "Unauthorized", "bad key")

    with pytest.raises(ApiError) as caught:
        await limit.guard(("10.0.0.1",), refused, {401})
    assert caught.value.status == 401  # the caller's own answer, not a 500
    assert kv.calls >= 3  # the limiter did try the bucket each time
