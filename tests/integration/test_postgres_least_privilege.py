"""The documented least-privilege PostgreSQL setup (deploy/postgres/service-role.sql),
run against a real server: every service starts on its own role, which may not create
schemas in the database nor read another service's schema."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from contracts.commands import rooms as cmd
from contracts.rooms import CreateRoomRequest
from services.identity.main import build as build_identity
from services.identity.settings import IdentitySettings
from services.janitor.main import build as build_janitor
from services.janitor.settings import JanitorSettings
from services.meetings.main import build as build_meetings
from services.meetings.settings import MeetingsSettings
from services.recordings.main import build as build_recordings
from services.recordings.settings import RecordingsSettings
from services.recordings.storage import ObjectStorage, StorageSettings
from services.rooms.main import build as build_rooms
from services.rooms.settings import RoomsSettings
from services.runtime.rpc import request
from tests.support.infra import postgres_dsn
from tests.support.services import running

SETUP_SQL = Path(__file__).resolve().parents[2] / "deploy" / "postgres" / "service-role.sql"
SERVICES = {
    "rooms": (RoomsSettings, build_rooms),
    "meetings": (MeetingsSettings, build_meetings),
    "recordings": (RecordingsSettings, build_recordings),
    "janitor": (JanitorSettings, build_janitor),
    "identity": (IdentitySettings, build_identity),
}


def with_database(dsn: str, database: str, user: str | None = None, password: str = "") -> str:
    """`dsn` (a URL) pointed at another database, and user."""
    url = urlsplit(dsn)
    netloc = url.netloc.rsplit("@", 1)[-1]
    if user is not None:
        netloc = f"{quote(user)}:{quote(password)}@{netloc}"
    elif "@" in url.netloc:
        netloc = url.netloc
    return urlunsplit((url.scheme, netloc, f"/{database}", url.query, ""))


@pytest.fixture
def least_privilege() -> Iterator[dict[str, str]]:
    """A fresh database with one role + schema per service, made by the documented SQL."""
    admin = postgres_dsn()
    if admin is None:
        pytest.skip("no PostgreSQL server answers at MEETPLANE_TEST_POSTGRES_DSN")
    if shutil.which("psql") is None:
        pytest.fail("psql is needed to run deploy/postgres/service-role.sql")
    tag = uuid.uuid4().hex[:10]
    database = f"mp_lp_{tag}"
    roles = {service: f"mp_{tag}_{service}" for service in SERVICES}
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    dsns: dict[str, str] = {}
    try:
        for service, role in roles.items():
            password = uuid.uuid4().hex
            subprocess.run(
                [
                    "psql",
                    with_database(admin, database),
                    "-q",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-v",
                    f"role={role}",
                    "-v",
                    f"schema={service}",
                    "-v",
                    f"password={password}",
                    "-v",
                    "connection_limit=40",
                    "-f",
                    str(SETUP_SQL),
                ],
                check=True,
                capture_output=True,
                text=True,
            )
            dsns[service] = with_database(admin, database, role, password)
        yield dsns
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
            )
            for role in roles.values():
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def test_service_roles_have_no_database_wide_rights(least_privilege: dict[str, str]) -> None:
    with psycopg.connect(least_privilege["rooms"], autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute('CREATE SCHEMA IF NOT EXISTS "rooms"')  # what services used to run
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE TABLE public.intruder (x int)")


async def test_every_service_starts_and_works_on_its_own_role(
    least_privilege: dict[str, str],
    settings_factory: Any,
    client_broker: Any,
    storage_settings: StorageSettings,
) -> None:
    async with AsyncExitStack() as stack:
        for service, (settings_class, build) in SERVICES.items():
            settings = settings_factory(
                settings_class, store="postgres", postgres_dsn=least_privilege[service]
            )
            if service == "recordings":
                parts: Any = build_recordings(settings, storage=ObjectStorage(storage_settings))
            else:
                parts = build(settings)  # type: ignore[operator]
            await stack.enter_async_context(running(parts, settings))
        reply = await request(
            client_broker,
            "rooms",
            "create",
            cmd.CreateRoom(request=CreateRoomRequest(roomName="least privilege")),
            timeout=10,
        )
        assert reply.ok, reply.error

    for service, dsn in least_privilege.items():
        with psycopg.connect(dsn) as conn:
            tables = conn.execute(
                "SELECT count(*) FROM pg_tables WHERE schemaname = %s AND tableowner = current_user",
                (service,),
            ).fetchone()
            assert tables is not None and tables[0] > 0, service
    with psycopg.connect(least_privilege["meetings"]) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM rooms.stored_events LIMIT 1")
