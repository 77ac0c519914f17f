"""Composition root of the identity service: `meetplane serve identity` runs `serve()`."""

from __future__ import annotations

import asyncio
import os
import secrets
import tempfile
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher

from services.identity.application import IdentityApplication
from services.identity.handlers import CONSUMED_SUBJECTS, ERRORS, IdentityHandlers
from services.identity.integration import identity_integration_event
from services.identity.projection import IdentityView
from services.identity.settings import IdentitySettings
from services.runtime.clock import Clock
from services.runtime.commands import CommandRouter
from services.runtime.consumer import DurableConsumer
from services.runtime.logging import configure_logging, get_logger
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

SERVICE = "identity"
log = get_logger("meetplane.identity")


def admin_password(settings: IdentitySettings) -> str:
    """The root admin's first password: configured, or generated once into the data dir.

    The generated file is created exclusively (replicas starting together agree on
    one value) with mode 0600; only its path is ever logged.
    """
    if settings.admin_password:
        return settings.admin_password
    path = Path(settings.data_dir) / "admin-password"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as file:
        file.write(secrets.token_urlsafe(18))
    log.warning("identity.admin_password_generated", path=str(path))
    return path.read_text().strip()


def build(settings: IdentitySettings, clock: Clock | None = None) -> ServiceParts:
    """Wire application, projection, outbox and handlers; nothing runs until started."""
    env = eventsourcing_env(settings, SERVICE)
    app = construct_application(
        lambda: IdentityApplication(
            env=env,
            clock=clock,
            session_ttl_ms=settings.session_ttl_seconds * 1000,
            hasher=PasswordHasher(
                time_cost=settings.password_hash_time_cost,
                memory_cost=settings.password_hash_memory_kib,
            ),
        )
    )
    broker = make_broker(settings, f"meetplane-{SERVICE}")
    view = IdentityView(view_engine(settings, SERVICE))
    projection = Projection(app, view, lease=make_lease(settings, SERVICE, "view"))
    outbox = Outbox(
        app,
        broker,
        identity_integration_event,
        stream=settings.stream_name,
        hold_file=settings.outbox_hold_file,
        lease=make_lease(settings, SERVICE, "outbox"),
    )
    signal = CommitSignal(broker, SERVICE)
    signal.follow(projection.follower, outbox.follower)
    app.add_commit_listener(signal.committed)
    handlers = IdentityHandlers(app, view, projection, broker, settings.command_timeout)
    router = CommandRouter(
        broker, SERVICE, ERRORS, published=lambda p: outbox.wait_published(p, timeout=2.0)
    )
    handlers.register(router)
    consumer = DurableConsumer(
        broker,
        service=SERVICE,
        name="identity-events",
        subjects=CONSUMED_SUBJECTS,
        process=handlers.process_events,
        position=lambda: app.position_of("identity-events"),
        lease=make_lease(settings, SERVICE, "consumer-identity-events"),
        stream=settings.stream_name,
        linger=settings.consumer_linger,
    )
    register_operations(router, [consumer], [projection])
    document_publishers(broker, ("user", "member", "apikey"))

    async def bootstrap_admin() -> None:
        password = admin_password(settings)
        if await asyncio.to_thread(app.ensure_root_admin, settings.admin_username, password):
            log.info("identity.root_admin_created", user_id=settings.admin_username)

    parts = ServiceParts(name=SERVICE, broker=broker, router=router)
    parts.on_started += [signal.bind, bootstrap_admin]
    parts.background += [projection.run, outbox.run, consumer.run]
    parts.stoppers += [projection.follower.stop, outbox.follower.stop, consumer.stop]
    parts.on_stop.append(app.close)
    parts.on_stop.append(view.engine.dispose)
    return parts


def asyncapi() -> dict[str, Any]:
    """The identity service's AsyncAPI document, from its own (unstarted) broker."""
    with tempfile.TemporaryDirectory() as data_dir:
        parts = build(IdentitySettings(data_dir=Path(data_dir), store="sqlite"))
        try:
            if parts.router is not None:
                parts.router.document()
            return asyncapi_document(parts.broker, title="meetplane identity service")
        finally:
            for close in parts.on_stop:
                close()


def serve() -> None:
    """Run the identity service until SIGINT/SIGTERM."""
    settings = IdentitySettings()
    configure_logging(settings.log_format, settings.log_level, SERVICE)

    async def _build() -> ServiceParts:
        return build(settings)

    asyncio.run(run_until_signalled(_build, settings))
