"""Composition root of the meetings service: `meetplane serve meetings` runs `serve()`."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from services.meetings.application import MeetingsApplication
from services.meetings.domain import Meeting
from services.meetings.handlers import MeetingsHandlers
from services.meetings.integration import meeting_integration_mapper
from services.meetings.media import MediaBackend, MediaSettings, media_backend
from services.meetings.projection import MeetingsView
from services.meetings.settings import MeetingsSettings
from services.runtime.clock import Clock
from services.runtime.logging import configure_logging
from services.runtime.nats import make_broker
from services.runtime.outbox import Outbox
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
    """Wire application, views, outbox, media backend and handlers."""
    env = eventsourcing_env(settings, SERVICE)
    app = construct_application(lambda: MeetingsApplication(env=env, clock=clock))
    broker = make_broker(settings, f"meetplane-{SERVICE}")
    view = MeetingsView(view_engine(settings, SERVICE))

    def write_through(aggregates: Sequence[object]) -> None:
        for aggregate in aggregates:
            if isinstance(aggregate, Meeting):
                view.put_meeting(aggregate)

    app.add_save_listener(write_through)
    media = media or media_backend(MediaSettings())
    outbox = Outbox(
        app,
        broker,
        meeting_integration_mapper(app.load),
        stream=settings.stream_name,
        hold_file=settings.outbox_hold_file,
        lease=make_lease(settings, SERVICE, "outbox"),
    )
    signal = CommitSignal(broker, SERVICE)
    signal.pokes.append(outbox.follower.poke)
    app.add_commit_listener(signal.committed)
    MeetingsHandlers(app, view, media, broker, settings.join_room_wait_seconds).register()
    document_publishers(broker, ("meeting",))
    parts = ServiceParts(name=SERVICE, broker=broker)
    parts.on_started.append(signal.bind)
    parts.background.append(outbox.run)
    parts.stoppers.append(outbox.follower.stop)
    parts.on_stop += [app.close, view.engine.dispose]
    return parts


def serve() -> None:
    """Run the meetings service until SIGINT/SIGTERM."""
    settings = MeetingsSettings()
    configure_logging(settings.log_format, settings.log_level, SERVICE)

    async def _build() -> ServiceParts:
        return build(settings)

    asyncio.run(run_until_signalled(_build, settings))
