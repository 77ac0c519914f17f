"""Composition root of the meetings service: `meetplane serve meetings` runs `serve()`."""

from __future__ import annotations

import asyncio

from services.meetings.application import MeetingsApplication
from services.meetings.domain import Meeting
from services.meetings.handlers import (
    CONSUMED_SUBJECTS,
    ERRORS,
    MeetingsHandlers,
    media_effect,
)
from services.meetings.integration import meeting_integration_event
from services.meetings.media import MediaBackend, MediaSettings, media_backend
from services.meetings.projection import MeetingsView
from services.meetings.settings import MeetingsSettings
from services.runtime.clock import Clock
from services.runtime.commands import CommandRouter
from services.runtime.consumer import DurableConsumer
from services.runtime.effects import SideEffects
from services.runtime.logging import configure_logging
from services.runtime.nats import make_broker
from services.runtime.operations import register_operations
from services.runtime.outbox import Outbox
from services.runtime.projection import Projection
from services.runtime.schemas import document_publishers
from services.runtime.service import ServiceParts, run_until_signalled
from services.runtime.store import (
    construct_application,
    eventsourcing_env,
    make_lease,
    view_engine,
)
from services.runtime.wakeup import CommitSignal

SERVICE = "meetings"


def build(
    settings: MeetingsSettings, clock: Clock | None = None, media: MediaBackend | None = None
) -> ServiceParts:
    """Wire application, view, outbox, media effects, consumer and handlers."""
    env = eventsourcing_env(settings, SERVICE)
    app = construct_application(lambda: MeetingsApplication(env=env, clock=clock))
    broker = make_broker(settings, f"meetplane-{SERVICE}")
    view = MeetingsView(view_engine(settings, SERVICE))
    # Every read of the meetings view (idle meetings) waits for it: it may linger.
    projection = Projection(
        app,
        view,
        kinds=(Meeting,),
        lease=make_lease(settings, SERVICE, "view"),
        linger=settings.consumer_linger,
    )
    media = media or media_backend(MediaSettings())
    effects = SideEffects(
        app,
        "media",
        media_effect(media),
        lease=make_lease(settings, SERVICE, "effects-media"),
        kinds=(Meeting,),
    )
    outbox = Outbox(
        app,
        broker,
        meeting_integration_event,
        stream=settings.stream_name,
        hold_file=settings.outbox_hold_file,
        lease=make_lease(settings, SERVICE, "outbox"),
        kinds=(Meeting,),
    )
    signal = CommitSignal(broker, SERVICE)
    signal.follow(projection.follower, effects.follower, outbox.follower)
    app.add_commit_listener(signal.committed)
    handlers = MeetingsHandlers(app, view, projection, media, broker)
    router = CommandRouter(
        broker, SERVICE, ERRORS, published=lambda p: outbox.wait_published(p, timeout=2.0)
    )
    handlers.register(router)
    consumer = DurableConsumer(
        broker,
        service=SERVICE,
        name="meetings-events",
        subjects=CONSUMED_SUBJECTS,
        process=handlers.process_events,
        position=lambda: app.position_of("meetings-events"),
        lease=make_lease(settings, SERVICE, "consumer-meetings-events"),
        stream=settings.stream_name,
        linger=settings.consumer_linger,
    )
    handlers.consumer = consumer
    register_operations(router, [consumer], [projection])
    document_publishers(broker, ("meeting",))
    parts = ServiceParts(name=SERVICE, broker=broker, router=router)
    parts.on_started.append(signal.bind)
    parts.background += [projection.run, effects.run, outbox.run, consumer.run]
    parts.stoppers += [
        projection.follower.stop,
        effects.follower.stop,
        outbox.follower.stop,
        consumer.stop,
    ]
    parts.on_stop += [app.close, view.engine.dispose]
    return parts


def serve() -> None:
    """Run the meetings service until SIGINT/SIGTERM."""
    settings = MeetingsSettings()
    configure_logging(settings.log_format, settings.log_level, SERVICE)

    async def _build() -> ServiceParts:
        return build(settings)

    asyncio.run(run_until_signalled(_build, settings))
