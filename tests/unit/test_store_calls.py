"""Where a store call runs: on the event loop for SQLite, in a worker thread for PostgreSQL.

A hop to a thread and back cost more CPU than a SQLite call (bench/perf.py); a
PostgreSQL call waits on the network and must not hold the loop.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from eventsourcing.persistence import Notification

from services.rooms.application import RoomsApplication
from services.rooms.settings import RoomsSettings
from services.runtime.follower import LogFollower
from services.runtime.store import eventsourcing_env
from tests.support.infra import drop_schemas, postgres_dsn, schema_prefix


@pytest.fixture(params=["sqlite", "postgres"])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RoomsApplication]:
    if request.param == "sqlite":
        settings = RoomsSettings(data_dir=tmp_path, store="sqlite")
        yield RoomsApplication(env=eventsourcing_env(settings, "rooms"))
        return
    dsn = postgres_dsn()
    if dsn is None:
        pytest.skip("no PostgreSQL server answers")
    prefix = schema_prefix()
    settings = RoomsSettings(
        data_dir=tmp_path, store="postgres", postgres_dsn=dsn, postgres_schema_prefix=prefix
    )
    application = RoomsApplication(env=eventsourcing_env(settings, "rooms", env={}))
    try:
        yield application
    finally:
        application.close()
        drop_schemas(dsn, prefix)


def test_store_calls_run_where_the_store_wants_them(
    app: RoomsApplication, request: pytest.FixtureRequest
) -> None:
    on_sqlite = request.node.callspec.params["app"] == "sqlite"

    async def both() -> tuple[int, int, int]:
        follower = LogFollower(
            "t", app.process_recorder, lambda: None, _never, record=lambda a, b: None
        )
        loop_thread = threading.get_ident()
        return (
            loop_thread,
            await app.call(threading.get_ident),
            await follower.run_sync(threading.get_ident),
        )

    loop_thread, command_thread, follower_thread = asyncio.run(both())
    assert app.on_loop is on_sqlite
    if on_sqlite:
        assert command_thread == follower_thread == loop_thread
    else:
        assert loop_thread not in (command_thread, follower_thread)


def test_a_commit_on_the_loop_wakes_a_follower_without_the_loops_pipe() -> None:
    """`offer` from the loop's own thread sets the wake-up at once (no call_soon_threadsafe)."""

    async def scenario() -> bool:
        follower = LogFollower(
            "t", _Recorder(), lambda: 0, _never, record=lambda a, b: None, on_loop=True
        )  # type: ignore[arg-type]
        follower._loop = asyncio.get_running_loop()
        follower._loop_thread = threading.get_ident()
        follower.offer(
            [
                Notification(
                    id=1, originator_id=uuid.uuid4(), originator_version=1, topic="t", state=b""
                )
            ]
        )
        return follower._wake.is_set()  # before the loop ran any callback

    assert asyncio.run(scenario())


class _Recorder:
    """No store: `offer` must not need one."""


async def _never(_start: int, _batch: object) -> None:
    raise AssertionError("not processed in this test")
