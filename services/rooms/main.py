"""Composition root of the rooms service: `meetplane serve rooms` runs `serve()`."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

from services.rooms.application import RoomsApplication
from services.rooms.domain import Room
from services.rooms.handlers import CONSUMED_SUBJECTS, ERRORS, RoomsHandlers
from services.rooms.integration import room_integration_event
from services.rooms.projection import RoomsView
from services.rooms.settings import RoomsSettings
from services.runtime.clock import Clock
from services.runtime.commands import CommandRouter
from services.runtime.consumer import DurableConsumer
from services.runtime.logging import configure_logging
from services.runtime.nats import make_broker
from services.runtime.operations import register_operations
from services.runtime.outbox import Outbox
from services.runtime.projection import Projection
from services.runtime.schemas import asyncapi_document, document_publishers
from services.runtime.service import ServiceParts, run_until_signalled
from services.runtime.store import (
    construct_application,
    eventsourcing_env,
    make_lease,
    view_engine,
)
from services.runtime.wakeup import CommitSignal

SERVICE = "rooms"


def build(settings: RoomsSettings, clock: Clock | None = None) -> ServiceParts:
    """Wire application, projection, outbox, consumer and handlers; nothing runs until started."""
    env = eventsourcing_env(settings, SERVICE)
    RoomsApplication.snapshotting_intervals = {Room: settings.rooms_snapshot_interval}
    app = construct_application(lambda: RoomsApplication(env=env, clock=clock))
    broker = make_broker(settings, f"meetplane-{SERVICE}")
    view = RoomsView(view_engine(settings, SERVICE))
    # Every read of the rooms view (`list`) waits for it: it may linger for a batch.
    projection = Projection(
        app,
        view,
        kinds=(Room,),
        lease=make_lease(settings, SERVICE, "view"),
        linger=settings.consumer_linger,
    )
    outbox = Outbox(
        app,
        broker,
        room_integration_event,
        stream=settings.stream_name,
        hold_file=settings.outbox_hold_file,
        lease=make_lease(settings, SERVICE, "outbox"),
    )
    signal = CommitSignal(broker, SERVICE)
    signal.follow(projection.follower, outbox.follower)
    app.add_commit_listener(signal.committed)
    handlers = RoomsHandlers(app, view, projection, broker, settings.command_timeout)
    router = CommandRouter(
        broker, SERVICE, ERRORS, published=lambda p: outbox.wait_published(p, timeout=2.0)
    )
    handlers.register(router)
    consumer = DurableConsumer(
        broker,
        service=SERVICE,
        name="rooms-events",
        subjects=CONSUMED_SUBJECTS,
        process=handlers.process_events,
        position=lambda: app.position_of("rooms-events"),
        lease=make_lease(settings, SERVICE, "consumer-rooms-events"),
        stream=settings.stream_name,
        linger=settings.consumer_linger,
    )
    register_operations(router, [consumer], [projection])
    document_publishers(broker, ("room",))
    parts = ServiceParts(name=SERVICE, broker=broker, router=router)
    parts.on_started.append(signal.bind)
    parts.background += [projection.run, outbox.run, consumer.run]
    parts.stoppers += [projection.follower.stop, outbox.follower.stop, consumer.stop]
    parts.on_stop.append(app.close)
    parts.on_stop.append(view.engine.dispose)
    return parts


def asyncapi() -> dict[str, Any]:
    """The rooms service's AsyncAPI document, from its own (unstarted) broker."""
    with tempfile.TemporaryDirectory() as data_dir:
        parts = build(RoomsSettings(data_dir=Path(data_dir), store="sqlite"))
        try:
            if parts.router is not None:
                parts.router.document()
            return asyncapi_document(parts.broker, title="meetplane rooms service")
        finally:
            for close in parts.on_stop:
                close()


def serve() -> None:
    """Run the rooms service until SIGINT/SIGTERM."""
    settings = RoomsSettings()
    configure_logging(settings.log_format, settings.log_level, SERVICE)

    async def _build() -> ServiceParts:
        return build(settings)

    asyncio.run(run_until_signalled(_build, settings))
