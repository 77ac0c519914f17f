"""Operator commands every service answers: dead letters and read-model rebuilds.

`meetplane dlq retry|drop` and `meetplane views rebuild` send these to the
owning service (any replica); the consumer or projection does the work.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from contracts.commands import DeadLetterCommand, ErrorCode, RebuildViews
from services.runtime.commands import CommandRouter
from services.runtime.consumer import DurableConsumer
from services.runtime.errors import DomainError
from services.runtime.projection import Projection


class UnknownTarget(DomainError):
    """No such consumer or view in this service."""

    error = "not_found"


def register_operations(
    router: CommandRouter,
    consumers: Sequence[DurableConsumer] = (),
    projections: Sequence[Projection] = (),
) -> None:
    """Answer `dlq_retry`, `dlq_drop` and `rebuild_views` for this service's parts."""
    by_name = {c.name: c for c in consumers}

    def consumer(name: str) -> DurableConsumer:
        if name not in by_name:
            raise UnknownTarget(f"no consumer '{name}' in {router.service}", field="consumer")
        return by_name[name]

    async def retry(request: DeadLetterCommand) -> dict[str, Any]:
        return await consumer(request.consumer).retry_parked(request.seq)

    async def drop(request: DeadLetterCommand) -> dict[str, Any]:
        return await consumer(request.consumer).drop_parked(request.seq)

    async def rebuild(request: RebuildViews) -> dict[str, Any]:
        chosen = [p for p in projections if request.view in (None, p.view.name)]
        if request.view is not None and not chosen:
            raise UnknownTarget(f"no view '{request.view}' in {router.service}", field="view")
        return {"rebuilt": {p.view.name: await p.rebuild() for p in chosen}}

    router.register("dlq_retry", DeadLetterCommand, retry)
    router.register("dlq_drop", DeadLetterCommand, drop)
    router.register("rebuild_views", RebuildViews, rebuild)
    router.errors = {**router.errors, UnknownTarget: ErrorCode.NOT_FOUND}
