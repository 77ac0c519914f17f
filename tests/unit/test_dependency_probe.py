"""Readiness probes of a service's dependencies: slow is not down, refused is.

A busy machine made S3's probe miss its half-second budget and took every
gateway's /readyz/platform to 503 although S3 answered a moment later.
"""

from __future__ import annotations

import asyncio

from services.runtime import commands


class Dependency:
    """A probe whose behaviour the test sets: answer, hang, or fail."""

    def __init__(self) -> None:
        self.mode = "up"

    async def __call__(self) -> bool:
        if self.mode == "slow":
            await asyncio.sleep(commands.CHECK_TIMEOUT * 4)  # hangs past the probe's budget
        if self.mode == "refused":
            raise ConnectionRefusedError
        return True


async def test_a_slow_probe_after_a_recent_success_is_still_up() -> None:
    dependency = Dependency()
    assert await commands._probe(dependency)
    dependency.mode = "slow"
    assert await commands._probe(dependency)


async def test_a_refused_probe_is_down_at_once_and_slow_is_not_up_without_a_success() -> None:
    dependency = Dependency()
    assert await commands._probe(dependency)
    dependency.mode = "refused"
    assert not await commands._probe(dependency)
    dependency.mode = "slow"
    assert not await commands._probe(dependency)
