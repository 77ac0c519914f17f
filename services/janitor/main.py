"""Composition root of the janitor: `meetplane serve janitor` runs `serve()`."""

from __future__ import annotations

import asyncio

from contracts.commands import ErrorCode
from services.janitor.handlers import CONSUMED_SUBJECTS, JanitorHandlers
from services.janitor.housekeeping import Housekeeping
from services.janitor.scheduler import Scheduler
from services.janitor.settings import JanitorSettings
from services.janitor.timers import TimerStore
from services.runtime.clock import Clock, SystemClock
from services.runtime.commands import CommandRouter
from services.runtime.consumer import DurableConsumer
from services.runtime.logging import configure_logging
from services.runtime.nats import make_broker
from services.runtime.operations import register_operations
from services.runtime.schemas import document_publishers
from services.runtime.service import ServiceParts, run_until_signalled
from services.runtime.store import make_lease, view_engine

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
    handlers = JanitorHandlers(store, scheduler, broker)
    router = CommandRouter(broker, SERVICE, {ValueError: ErrorCode.INVALID})
    handlers.register(router)
    consumer = DurableConsumer(
        broker,
        service=SERVICE,
        name="janitor-events",
        subjects=CONSUMED_SUBJECTS,
        process=handlers.process_events,
        position=lambda: store.position("janitor-events"),
        lease=make_lease(settings, SERVICE, "consumer-janitor-events"),
        stream=settings.stream_name,
        linger=settings.consumer_linger,
    )
    register_operations(router, [consumer])
    document_publishers(broker, ("janitor",))
    parts = ServiceParts(name=SERVICE, broker=broker, router=router)
    parts.background += [scheduler.run, housekeeping.run, consumer.run]
    parts.stoppers += [scheduler.stop, housekeeping.stop, consumer.stop]
    parts.on_stop.append(store.engine.dispose)
    return parts


def serve() -> None:
    """Run the janitor until SIGINT/SIGTERM."""
    settings = JanitorSettings()
    configure_logging(settings.log_format, settings.log_level, SERVICE)

    async def _build() -> ServiceParts:
        return build(settings)

    asyncio.run(run_until_signalled(_build, settings))
