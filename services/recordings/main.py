"""Composition root of the recordings service: `meetplane serve recordings` runs `serve()`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from pathlib import Path

from eventsourcing.persistence import IntegrityError, Notification, Tracking

from services.recordings.application import RecordingsApplication
from services.recordings.domain import Recording
from services.recordings.egress import Egress, LiveKitEgress, LocalEgress
from services.recordings.handlers import RecordingsHandlers
from services.recordings.integration import recording_integration_mapper
from services.recordings.projection import RecordingsView
from services.recordings.reconcile import StuckRecordings
from services.recordings.settings import RecordingsSettings
from services.recordings.storage import ObjectStorage, StorageSettings
from services.runtime.clock import Clock
from services.runtime.follower import LogFollower
from services.runtime.logging import configure_logging, get_logger
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

SERVICE = "recordings"
log = get_logger("meetplane.recordings")


def media_deletion(
    app: RecordingsApplication, storage: ObjectStorage, settings: RecordingsSettings
) -> LogFollower:
    """Follow our own log and remove the object of every deleted recording.

    Runs after the metadata event committed; a crash before the object is gone
    resumes from the recorded position, so no object is left behind.
    """
    name = "recordings.media_delete"
    hold = (
        Path(settings.recordings_hold_media_delete_file)
        if settings.recordings_hold_media_delete_file
        else None
    )

    async def process(notifications: Sequence[Notification]) -> None:
        while hold is not None and hold.exists():  # noqa: ASYNC110 - fault injection for tests
            await asyncio.sleep(0.05)
        for notification in notifications:
            if not notification.topic.endswith("Recording.Deleted"):
                continue
            recording = await asyncio.to_thread(app.load, notification.originator_id, None)
            await asyncio.to_thread(storage.delete, recording.object_key)
            log.info("recording.media_deleted", recording_id=recording.recording_id)
        with contextlib.suppress(IntegrityError):  # another replica recorded it
            await asyncio.to_thread(
                app.process_recorder.insert_tracking, Tracking(name, notifications[-1].id)
            )

    return LogFollower(
        name,
        app.process_recorder,
        lambda: app.process_recorder.max_tracking_id(name),
        process,
        lease=make_lease(settings, SERVICE, "media_delete"),
    )


def build(
    settings: RecordingsSettings,
    clock: Clock | None = None,
    storage: ObjectStorage | None = None,
    egress: Egress | None = None,
) -> ServiceParts:
    """Wire application, views, storage, egress, outbox and followers."""
    env = eventsourcing_env(settings, SERVICE)
    app = construct_application(
        lambda: RecordingsApplication(
            env=env,
            clock=clock,
            start_timeout_ms=int(settings.recording_start_timeout * 1000),
            end_timeout_ms=int(settings.recording_end_timeout * 1000),
        )
    )
    broker = make_broker(settings, f"meetplane-{SERVICE}")
    view = RecordingsView(view_engine(settings, SERVICE))

    def write_through(aggregates: Sequence[object]) -> None:
        for aggregate in aggregates:
            if isinstance(aggregate, Recording):
                view.put_recording(aggregate)

    app.add_save_listener(write_through)
    storage = storage or ObjectStorage(StorageSettings())

    def finished(
        recording_id: str, size: int | None, duration: float, error: str | None, limit: bool
    ) -> None:
        app.finish(recording_id, size, duration, error, limit)
        log.info("recording.finished", recording_id=recording_id, size=size, error=error)

    if egress is None:
        egress = (
            LiveKitEgress(settings, storage)
            if settings.media_backend == "livekit"
            else LocalEgress(storage, finished, settings.recording_max_seconds)
        )
    outbox = Outbox(
        app,
        broker,
        recording_integration_mapper(app.load),
        stream=settings.stream_name,
        hold_file=settings.outbox_hold_file,
        lease=make_lease(settings, SERVICE, "outbox"),
    )
    deleter = media_deletion(app, storage, settings)
    signal = CommitSignal(broker, SERVICE)
    signal.pokes += [outbox.follower.poke, deleter.poke]
    app.add_commit_listener(signal.committed)
    app.add_commit_listener(deleter.poke)
    RecordingsHandlers(app, view, storage, egress, broker).register()
    reconciler = StuckRecordings(
        app,
        view,
        make_lease(settings, SERVICE, "reconcile"),
        settings.recording_reconcile_interval,
    )
    document_publishers(broker, ("recording",))

    async def ensure_bucket() -> None:
        await asyncio.to_thread(storage.ensure_bucket)

    parts = ServiceParts(name=SERVICE, broker=broker)
    parts.on_started += [ensure_bucket, signal.bind]
    parts.background += [outbox.run, deleter.run, reconciler.run]
    parts.stoppers += [outbox.follower.stop, deleter.stop, reconciler.stop]
    parts.on_stop += [app.close, view.engine.dispose]
    return parts


def serve() -> None:
    """Run the recordings service until SIGINT/SIGTERM."""
    settings = RecordingsSettings()
    configure_logging(settings.log_format, settings.log_level, SERVICE)

    async def _build() -> ServiceParts:
        return build(settings)

    asyncio.run(run_until_signalled(_build, settings))
