"""Side effects outside the store, driven from the service's own log until they succeed.

A command or a consumed event only commits domain events.  What must then
happen elsewhere (remove a participant from LiveKit, delete LiveKit's room when
a meeting ends, stop an egress, delete an object from S3) is planned from those
events by a follower of the log and carried out in log order, each retried with
backoff until it succeeds; the follower's position moves past an event only once
its effect is done.  A crash re-runs the effects of the last unfinished batch,
so every effect must be idempotent (deleting what is gone is success).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from eventsourcing.persistence import Notification

from services.runtime.follower import LogFollower, TrackingPosition
from services.runtime.leader import Lease
from services.runtime.logging import get_logger
from services.runtime.retry import retry_forever
from services.runtime.store import ServiceApplication
from services.runtime.tracker import AggregateStates

log = get_logger("meetplane.effects")

Action = Callable[[], Awaitable[Any]]
# Given a domain event and its aggregate right after it, the effect to carry out (or None).
# Called on the follower's thread: read what the effect needs from the state now.
Planner = Callable[[Any, Any], Action | None]


class SideEffects:
    """Carries out the effects a `Planner` derives from a service's log."""

    def __init__(
        self,
        app: ServiceApplication,
        name: str,
        planner: Planner,
        *,
        lease: Lease | None = None,
        kinds: tuple[type, ...] | None = None,
    ) -> None:
        """`kinds`: the aggregates `planner` plans for (default all); others are not decoded."""
        self.app = app
        self.planner = planner
        self.tracking = TrackingPosition(app.process_recorder, f"{app.name}.effects.{name}")
        self.states = AggregateStates(app, kinds=kinds)
        self.done = 0
        self.follower = LogFollower(
            self.tracking.name,
            app.process_recorder,
            self.tracking.read,
            self._carry_out,
            lease=lease,
            wants=self.states.concerns,
            record=self.tracking.write,
        )
        app.add_commit_listener(self.follower.offer)

    def position(self) -> int | None:
        """The last notification whose effects are done."""
        return self.tracking.read()

    async def run(self) -> None:
        """Follow the log until stopped."""
        await self.follower.run()

    def _plan(self, notifications: Sequence[Notification]) -> list[tuple[str, Action]]:
        planned: list[tuple[str, Action]] = []
        try:
            for event, state in self.states.advance(notifications):
                action = self.planner(event, state)
                if action is not None:
                    planned.append((type(event).__qualname__, action))
        except Exception:
            self.states.forget()
            raise
        return planned

    async def _carry_out(self, _start: int, notifications: Sequence[Notification]) -> bool:
        if not self.states.concerns(notifications):
            return False  # the follower records the position later
        planned = await self.follower.run_sync(self._plan, notifications)
        if not planned:
            return False  # no effect: the follower records the position later
        for kind, action in planned:

            def failed(error: BaseException, attempt: int, delay: float, kind: str = kind) -> None:
                log.warning(
                    "effect.failed",
                    effects=self.tracking.name,
                    domain_event=kind,
                    error=repr(error),
                    attempt=attempt,
                    retry_in=round(delay, 2),
                )

            await retry_forever(action, failed, initial=0.2, maximum=30.0)
            self.done += 1
        await self.follower.run_sync(self.tracking.write, _start, notifications[-1].id)
        return True
