"""Composition root of the recordings service: `meetplane serve recordings` runs `serve()`."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from services.recordings.application import RecordingsApplication
from services.recordings.domain import Recording
from services.recordings.egress import Egress, LiveKitEgress, LocalEgress
from services.recordings.handlers import CONSUMED_SUBJECTS, ERRORS, RecordingsHandlers
from services.recordings.integration import recording_integration_event
from services.recordings.projection import RecordingsView
from services.recordings.reconcile import StuckRecordings
from services.recordings.settings import RecordingsSettings
from services.recordings.storage import ObjectStorage, StorageSettings
from services.runtime.clock import Clock
from services.runtime.commands import CommandRouter
from services.runtime.consumer import DurableConsumer
from services.runtime.effects import Action, Planner, SideEffects
from services.runtime.health import http_reachable
from services.runtime.logging import configure_logging, get_logger
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

SERVICE = "recordings"
log = get_logger("meetplane.recordings")


def media_deletion(storage: ObjectStorage, settings: RecordingsSettings) -> Planner:
    """Remove the object of every deleted recording, after its metadata event committed.

    A crash before the object is gone resumes from the recorded position, so no
    object is left behind; deleting an object that is gone is success.
    """
    hold = (
        Path(settings.recordings_hold_media_delete_file)
        if settings.recordings_hold_media_delete_file
        else None
    )

    def plan(event: Any, state: Any) -> Action | None:
        if not isinstance(state, Recording) or type(event).__name__ != "Deleted":
            return None
        key, recording_id = state.object_key, state.recording_id

        async def delete() -> None:
            while hold is not None and hold.exists():  # noqa: ASYNC110 - fault injection for tests
                await asyncio.sleep(0.05)
            await asyncio.to_thread(storage.delete, key)
            log.info("recording.media_deleted", recording_id=recording_id)

        return delete

    return plan


def egress_stopping(egress: Egress) -> Planner:
    """Stop the egress of every recording asked to stop, by the egress id stored on it.

    Driven from the log, so any replica (or this one after a restart) stops what
    another started, and a failed call to the media backend is retried.
    """

    def plan(event: Any, state: Any) -> Action | None:
        if not isinstance(state, Recording) or type(event).__name__ != "StopRequested":
            return None
        recording_id, egress_id = state.recording_id, state.egress_id

        async def stop() -> None:
            await egress.stop(recording_id, egress_id)
            log.info("recording.egress_stopped", recording_id=recording_id, egress_id=egress_id)

        return stop

    return plan


def build(
    settings: RecordingsSettings,
    clock: Clock | None = None,
    storage: ObjectStorage | None = None,
    egress: Egress | None = None,
) -> ServiceParts:
    """Wire application, views, storage, egress, outbox, consumer and followers."""
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
    projection = Projection(
        app, view, kinds=(Recording,), lease=make_lease(settings, SERVICE, "view")
    )
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
    # The outbox and the side effects act on recordings only: a room's recording
    # settings (RoomRecorder) are not decoded for them, nor do they wake them.
    outbox = Outbox(
        app,
        broker,
        recording_integration_event,
        stream=settings.stream_name,
        hold_file=settings.outbox_hold_file,
        lease=make_lease(settings, SERVICE, "outbox"),
        kinds=(Recording,),
    )
    deleter = SideEffects(
        app,
        "media_delete",
        media_deletion(storage, settings),
        lease=make_lease(settings, SERVICE, "media_delete"),
        kinds=(Recording,),
    )
    stopper = SideEffects(
        app,
        "egress_stop",
        egress_stopping(egress),
        lease=make_lease(settings, SERVICE, "egress_stop"),
        kinds=(Recording,),
    )
    signal = CommitSignal(broker, SERVICE)
    signal.follow(projection.follower, outbox.follower, deleter.follower, stopper.follower)
    app.add_commit_listener(signal.committed)
    handlers = RecordingsHandlers(app, view, storage, egress, broker)
    router = CommandRouter(
        broker, SERVICE, ERRORS, published=lambda p: outbox.wait_published(p, timeout=2.0)
    )
    handlers.register(router)
    consumer = DurableConsumer(
        broker,
        service=SERVICE,
        name="recordings-events",
        subjects=CONSUMED_SUBJECTS,
        process=handlers.process_events,
        position=lambda: app.position_of("recordings-events"),
        lease=make_lease(settings, SERVICE, "consumer-recordings-events"),
        stream=settings.stream_name,
        linger=settings.consumer_linger,
    )
    handlers.consumer = consumer
    handlers.projection = projection
    register_operations(router, [consumer], [projection])
    reconciler = StuckRecordings(
        app,
        view,
        make_lease(settings, SERVICE, "reconcile"),
        settings.recording_reconcile_interval,
    )
    document_publishers(broker, ("recording",))

    async def ensure_bucket() -> None:
        await asyncio.to_thread(storage.ensure_bucket)

    async def storage_up() -> bool:
        scheme = "https" if storage.settings.secure else "http"
        return await http_reachable(f"{scheme}://{storage.settings.endpoint}/")

    parts = ServiceParts(name=SERVICE, broker=broker, router=router)
    parts.checks["storage"] = storage_up
    parts.on_started += [ensure_bucket, signal.bind]
    parts.background += [
        projection.run,
        outbox.run,
        deleter.run,
        stopper.run,
        consumer.run,
        reconciler.run,
    ]
    parts.stoppers += [
        projection.follower.stop,
        outbox.follower.stop,
        deleter.follower.stop,
        stopper.follower.stop,
        consumer.stop,
        reconciler.stop,
    ]
    # Local recordings end (and record their end) before the store closes.
    parts.on_stop += [egress.close, app.close, view.engine.dispose]
    return parts


def serve() -> None:
    """Run the recordings service until SIGINT/SIGTERM."""
    settings = RecordingsSettings()
    configure_logging(settings.log_format, settings.log_level, SERVICE)

    async def _build() -> ServiceParts:
        return build(settings)

    asyncio.run(run_until_signalled(_build, settings))
