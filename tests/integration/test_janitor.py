"""The janitor with the real rooms service on a real nats-server (SQLite, PostgreSQL)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from faststream.nats import NatsBroker
from prometheus_client import REGISTRY

from contracts.commands import rooms as cmd
from contracts.rooms import CreateRoomRequest
from services.janitor.main import build as build_janitor
from services.janitor.settings import JanitorSettings
from services.janitor.timers import TimerStore
from services.rooms.main import build as build_rooms
from services.rooms.settings import RoomsSettings
from services.runtime.clock import ManualClock
from services.runtime.rpc import request
from services.runtime.store import view_engine
from tests.integration.test_rooms_service import RecordingsStandIn
from tests.support.services import running, stream_events, wait_for

HOUR = 3_600_000


async def create(broker: NatsBroker, **fields: Any) -> dict[str, Any]:
    reply = await request(
        broker, "rooms", "create", cmd.CreateRoom(request=CreateRoomRequest(**fields))
    )
    assert reply.ok, reply.error
    return reply.result  # type: ignore[no-any-return]


async def due_events(url: str, room_id: str) -> list[dict[str, Any]]:
    events = await stream_events(url, "meetplane.evt.janitor.*", idle=0.2)
    return [e for e in events if e["subject_id"] == room_id]


async def test_timers_follow_room_dates_and_fire_once(
    settings_factory: Any, store: dict[str, str], client_broker: NatsBroker, nats_server: Any
) -> None:
    clock = ManualClock(start_ms=1_900_000_000_000)
    await RecordingsStandIn().attach(client_broker)
    rooms_settings = settings_factory(RoomsSettings, **store)
    janitor_settings = settings_factory(JanitorSettings, timer_poll_seconds=0.05, **store)
    async with (
        running(build_rooms(rooms_settings, clock=clock), rooms_settings),
        running(build_janitor(janitor_settings, clock=clock), janitor_settings),
    ):
        timers = TimerStore(view_engine(janitor_settings, "janitor"))
        doomed = await create(
            client_broker,
            autoDeletionDate=clock.now_ms() + 2 * HOUR,
            autoDeletionPolicy={"withMeeting": "force", "withRecordings": "force"},
        )
        moved = await create(client_broker, autoDeletionDate=clock.now_ms() + 2 * HOUR)
        cleared = await create(client_broker, autoDeletionDate=clock.now_ms() + 2 * HOUR)
        await wait_for(lambda: timers.count() == 3)
        await request(
            client_broker,
            "rooms",
            "update_settings",
            {
                "roomId": moved["roomId"],
                "settings": {"autoDeletionDate": clock.now_ms() + 5 * HOUR},
            },
        )
        await request(
            client_broker,
            "rooms",
            "update_settings",
            {"roomId": cleared["roomId"], "settings": {"clearAutoDeletionDate": True}},
        )
        await wait_for(
            lambda: (
                timers.count() == 2 and timers.due_of(moved["roomId"]) == clock.now_ms() + 5 * HOUR
            )
        )

        clock.advance(2 * HOUR + 1)

        async def deleted() -> bool:
            got = await request(client_broker, "rooms", "get", {"roomId": doomed["roomId"]})
            return got.error is not None and got.error.kind == "not_found"

        await wait_for(deleted)
        assert (await request(client_broker, "rooms", "get", {"roomId": moved["roomId"]})).ok
        # Barrier instead of a pause for a second firing: a timer row is removed only after
        # JetStream acked its event, and only a row can fire; once it is gone, all is published.
        await wait_for(lambda: timers.due_of(doomed["roomId"]) is None)
        fired = await due_events(nats_server.url, doomed["roomId"])
        assert (
            len(fired) == 1 and fired[0]["data"]["autoDeletionDate"] == doomed["autoDeletionDate"]
        )
        assert await due_events(nats_server.url, moved["roomId"]) == []
        assert timers.count() == 1
        timers.engine.dispose()


async def test_two_replicas_fire_each_timer_once(
    settings_factory: Any, client_broker: NatsBroker, nats_server: Any
) -> None:
    from tests.support.infra import drop_schemas, postgres_dsn, schema_prefix

    dsn = postgres_dsn()
    prefix = schema_prefix()
    shared = (
        {"store": "postgres", "postgres_dsn": dsn, "postgres_schema_prefix": prefix} if dsn else {}
    )

    # Stable event ids make JetStream drop a second firing of a timer from the stream,
    # so count what the schedulers published: each ack says whether it was a duplicate.
    def fired(duplicate: bool) -> float:
        labels = {"duplicate": str(duplicate).lower()}
        return REGISTRY.get_sample_value("meetplane_janitor_timers_fired_total", labels) or 0.0

    first, again = fired(False), fired(True)
    clock = ManualClock(start_ms=1_900_000_000_000)
    one = settings_factory(JanitorSettings, timer_poll_seconds=0.02, **shared)
    two = settings_factory(JanitorSettings, timer_poll_seconds=0.02, **shared)
    timers = TimerStore(view_engine(one, "janitor"))
    timers.set_many([(f"room-{i}", clock.now_ms() + i) for i in range(300)])
    try:
        async with (
            running(build_janitor(one, clock=clock), one),
            running(build_janitor(two, clock=clock), two),
        ):
            clock.advance(1000)
            await wait_for(lambda: timers.count() == 0, timeout=30)
        events = await stream_events(nats_server.url, "meetplane.evt.janitor.*", idle=0.3)
        assert sorted(e["subject_id"] for e in events) == sorted(f"room-{i}" for i in range(300))
        assert fired(False) - first == 300
        assert fired(True) - again == 0, "a timer fired twice"
    finally:
        timers.engine.dispose()
        if dsn:
            drop_schemas(dsn, prefix)


async def test_real_clock_short_date(settings_factory: Any, nats_server: Any) -> None:
    settings = settings_factory(JanitorSettings, timer_poll_seconds=5.0)
    timers = TimerStore(view_engine(settings, "janitor"))
    lateness = "meetplane_janitor_firing_lateness_seconds_count"
    observed = REGISTRY.get_sample_value(lateness) or 0
    async with running(build_janitor(settings), settings):
        due = int(time.time() * 1000) + 700
        timers.set("soon", due)  # inserted behind the scheduler's back: found by its poll/next-due
        assert REGISTRY.get_sample_value("meetplane_janitor_timers_pending") == 1
        started = time.monotonic()
        events = await wait_for(lambda: due_events(nats_server.url, "soon"), timeout=10)
        late_ms = (time.monotonic() - started) * 1000 - 700
        # The janitor row of the dashboard and the lateness alert read these.
        await wait_for(lambda: REGISTRY.get_sample_value("meetplane_janitor_timers_pending") == 0)
        assert REGISTRY.get_sample_value(lateness) == observed + 1
    assert events[0]["data"]["autoDeletionDate"] == due
    assert late_ms < 6000  # within one poll interval at worst
    timers.engine.dispose()


async def test_timers_due_during_downtime_fire_on_restart(
    settings_factory: Any, nats_server: Any, tmp_path: Path
) -> None:
    settings = settings_factory(JanitorSettings)
    timers = TimerStore(view_engine(settings, "janitor"))
    env = {
        **os.environ,
        "MEETPLANE_NATS_URL": nats_server.url,
        "MEETPLANE_DATA_DIR": str(settings.data_dir),
    }
    log = (tmp_path / "janitor.log").open("wb")
    janitor = subprocess.Popen(
        [sys.executable, "-m", "services.runtime.cli", "serve", "janitor"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log_path = tmp_path / "janitor.log"
    await wait_for(lambda: "service.started" in log_path.read_text(errors="replace"), timeout=60)
    janitor.send_signal(signal.SIGKILL)
    janitor.wait()
    now = int(time.time() * 1000)
    timers.set_many([(f"down-{i}", now + 200 + i) for i in range(50)])
    # All due while the janitor is down, by the wall clock the janitor reads.
    await wait_for(lambda: time.time() * 1000 > now + 200 + 49)
    janitor = subprocess.Popen(
        [sys.executable, "-m", "services.runtime.cli", "serve", "janitor"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        # From the moment it runs again (its start-up under a loaded machine is not
        # what this measures: one full run read 16 s here, most of it importing).
        await wait_for(
            lambda: log_path.read_text(errors="replace").count("service.started") == 2,
            timeout=60,
        )
        restarted_at = time.monotonic()

        async def all_fired() -> bool:
            events = await stream_events(nats_server.url, "meetplane.evt.janitor.*", idle=0.2)
            return len({e["subject_id"] for e in events}) == 50

        await wait_for(all_fired, timeout=30)
        recovery = time.monotonic() - restarted_at
    finally:
        janitor.terminate()
        janitor.wait()
        timers.engine.dispose()
    assert timers.count() == 0
    assert recovery < 15, f"took {recovery:.1f}s after restart"
