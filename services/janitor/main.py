"""Composition root of the janitor: `meetplane serve janitor` runs `serve()`."""

from __future__ import annotations

import asyncio

from services.janitor.handlers import JanitorHandlers
from services.janitor.housekeeping import Housekeeping
from services.janitor.scheduler import Scheduler
from services.janitor.settings import JanitorSettings
from services.janitor.timers import TimerStore
from services.runtime.clock import Clock, SystemClock
from services.runtime.logging import configure_logging
from services.runtime.nats import make_broker
from services.runtime.schemas import document_publishers
from services.runtime.service import ServiceParts, run_until_signalled
from services.runtime.store import view_engine

SERVICE = "janitor"


def build(settings: JanitorSettings, clock: Clock | None = None) -> ServiceParts:
    """Wire the timer store, the scheduler, housekeeping and the room-event consumer."""
    clock = clock or SystemClock()
    broker = make_broker(settings, f"meetplane-{SERVICE}")
    store = TimerStore(view_engine(settings, SERVICE))
    scheduler = Scheduler(
        store,
        broker,
        clock,
        stream=settings.stream_name,
        batch=settings.timer_batch,
        lease_ms=int(settings.timer_lease_seconds * 1000),
        poll_seconds=settings.timer_poll_seconds,
        lookahead_ms=settings.timer_lookahead_ms,
    )
    housekeeping = Housekeeping(
        store,
        broker,
        clock,
        empty_timeout_s=settings.empty_meeting_timeout,
        interval_s=settings.housekeeping_interval,
        orphan_interval_s=settings.orphan_sweep_interval,
        orphan_min_age_s=settings.orphan_min_age,
    )
    JanitorHandlers(store, scheduler, broker).register()
    document_publishers(broker, ("janitor",))
    parts = ServiceParts(name=SERVICE, broker=broker)
    parts.background += [scheduler.run, housekeeping.run]
    parts.stoppers += [scheduler.stop, housekeeping.stop]
    parts.on_stop.append(store.engine.dispose)
    return parts


def serve() -> None:
    """Run the janitor until SIGINT/SIGTERM."""
    settings = JanitorSettings()
    configure_logging(settings.log_format, settings.log_level, SERVICE)

    async def _build() -> ServiceParts:
        return build(settings)

    asyncio.run(run_until_signalled(_build, settings))
