"""`meetplane up` as an operator meets it: refusals, signals, crashes of its parts, no orphans."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.support.infra import free_port
from tests.support.platform import EmbeddedUp
from tests.support.services import wait_until


@pytest.fixture
def up(tmp_path: Path) -> Iterator[EmbeddedUp]:
    platform = EmbeddedUp(tmp_path / "up")
    try:
        yield platform
    finally:
        platform.close()


def names(processes: list[psutil.Process]) -> set[str]:
    found = set()
    for proc in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            found.add(proc.name())
    return found


def assert_one_line_refusal(platform: EmbeddedUp, *fragments: str) -> str:
    code = platform.wait_exit(20)
    output = platform.output().strip()
    assert code == 1, output
    assert len(output.splitlines()) == 1, output
    assert "Traceback" not in output and "is up" not in output
    for fragment in fragments:
        assert fragment in output, output
    return output


def test_a_second_up_on_the_same_data_dir_refuses_at_once(up: EmbeddedUp, tmp_path: Path) -> None:
    up.wait_ready()
    nats_pid = up.pid("nats-server")
    started = time.monotonic()
    second = EmbeddedUp(tmp_path / "second", data_dir=up.data_dir)
    try:
        line = assert_one_line_refusal(second, str(up.data_dir), "MEETPLANE_DATA_DIR")
        assert time.monotonic() - started < 10
        assert f"pid {up.process.pid}" in line
    finally:
        second.close()
    # The running instance is untouched: same NATS, still ready, still serving.
    assert up.pid("nats-server") == nats_pid
    assert up.readyz()[0] == 200
    assert up.client.post("/api/v1/rooms", json={"roomName": "still mine"}).status_code == 201


@pytest.mark.parametrize(
    ("port_kind", "variable"),
    [
        ("http_port", "MEETPLANE_HTTP_PORT"),
        ("nats_port", "MEETPLANE_NATS_PORT"),
        ("storage_port", "MEETPLANE_STORAGE_PORT"),
        ("health_port_base", "MEETPLANE_HEALTH_PORT_BASE"),
    ],
)
def test_a_busy_port_is_named_with_the_variable_to_change(
    tmp_path: Path, port_kind: str, variable: str
) -> None:
    port = free_port()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        platform = EmbeddedUp(tmp_path / "busy", **{port_kind: port})
        try:
            assert_one_line_refusal(platform, f"port {port}", variable)
            assert list(platform.data_dir.glob("run/*.pid")) == []  # nothing was started
        finally:
            platform.close()


def test_killing_the_launcher_leaves_no_orphans_and_up_starts_again(
    up: EmbeddedUp, tmp_path: Path
) -> None:
    up.wait_ready()
    children = up.tree()
    assert {"nats-server", "weed"} <= names(children)
    assert len(children) >= 7  # nats-server, weed and every service
    up.process.kill()
    up.process.wait()
    _, alive = psutil.wait_procs(children, timeout=20)
    assert alive == [], f"orphans: {alive}"

    again = EmbeddedUp(
        tmp_path / "again",
        data_dir=up.data_dir,
        http_port=up.http_port,
        nats_port=up.nats_port,
        storage_port=up.storage_port,
    )
    try:
        again.wait_ready()
    finally:
        again.close()


def test_sighup_stops_everything(up: EmbeddedUp) -> None:
    up.wait_ready()
    children = up.tree()
    up.process.send_signal(signal.SIGHUP)
    assert up.wait_exit(15) == 0
    _, alive = psutil.wait_procs(children, timeout=5)
    assert alive == []
    assert "meetplane stopped" in up.output()


async def _burst(base: str, key: str, count: int) -> int:
    async with httpx.AsyncClient(base_url=base, headers={"X-API-KEY": key}, timeout=30) as http:
        limit = asyncio.Semaphore(16)

        async def create(i: int) -> int:
            async with limit:
                response = await http.post("/api/v1/rooms", json={"roomName": f"burst {i}"})
                return response.status_code

        codes = await asyncio.gather(*(create(i) for i in range(count)))
    return sum(code == 201 for code in codes)


def test_ctrl_c_right_after_a_burst_stops_everything_within_5_seconds(up: EmbeddedUp) -> None:
    up.wait_ready()
    assert asyncio.run(_burst(up.base, up.api_key, 200)) == 200
    children = up.tree()
    started = time.monotonic()
    up.process.send_signal(signal.SIGINT)
    code = up.wait_exit(30)
    elapsed = time.monotonic() - started
    _, alive = psutil.wait_procs(children, timeout=1)
    assert code == 0 and alive == []
    assert elapsed < 5.0, f"stopping took {elapsed:.1f}s\n{up.output()[-2000:]}"
    # meetplane's services and NATS stopped on their own, not because time ran out.
    # (SeaweedFS's own shutdown takes 1-4 s on a busy machine; it may be cut short.)
    killed = set(re.findall(r"component_killed\s+component=(\S+)", up.output()))
    assert killed <= {"seaweedfs"}, up.output()[-2000:]


class Observer:
    """Polls readiness and a command through the gateway, recording what it saw."""

    def __init__(self, platform: EmbeddedUp) -> None:
        self.platform = platform
        self.seen: list[tuple[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        with httpx.Client(
            base_url=self.platform.base, headers={"X-API-KEY": self.platform.api_key}, timeout=5
        ) as http:
            while not self._stop.is_set():
                try:
                    ready = http.get("/readyz/platform")
                    self.seen.append(("readyz", (ready.status_code, ready.json()["down"])))
                    answer = http.get("/api/v1/rooms/observer-0000")
                    self.seen.append(("api", (answer.status_code, answer.json().get("code"))))
                except httpx.HTTPError as exc:
                    self.seen.append(("error", repr(exc)))
                self._stop.wait(0.05)

    def __enter__(self) -> Observer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def _wait_restarted_and_ready(platform: EmbeddedUp, component: str, old_pid: int) -> None:
    wait_until(
        lambda: platform.pid(component) != old_pid and platform.readyz()[0] == 200,
        60,
        ignore=(FileNotFoundError, ValueError, httpx.HTTPError),
        message=lambda: f"{component} not back\n{platform.output()[-3000:]}",
    )


def test_nats_and_storage_are_supervised_and_named_while_down(up: EmbeddedUp) -> None:
    up.wait_ready()

    nats_pid = up.pid("nats-server")
    with Observer(up) as observer:
        os.kill(nats_pid, signal.SIGKILL)
        _wait_restarted_and_ready(up, "nats-server", nats_pid)
    assert ("readyz", (503, ["nats"])) in observer.seen, observer.seen
    # The gateway reconnects within a fraction of a second: an API call may or may not
    # fall in that window (test_command_transport covers the answer itself), but every
    # failure it saw names NATS, never the service behind it or an internal error.
    api = [answer for kind, answer in observer.seen if kind == "api"]
    assert api and all(a in {(404, "room_not_found"), (503, "nats_unavailable")} for a in api), api

    weed_pid = up.pid("seaweedfs")
    with Observer(up) as observer:
        os.kill(weed_pid, signal.SIGKILL)
        _wait_restarted_and_ready(up, "seaweedfs", weed_pid)
    assert ("readyz", (503, ["storage"])) in observer.seen, observer.seen

    assert "launcher.component_restarted" in up.output()
    created = up.client.post("/api/v1/rooms", json={"roomName": "after both crashes"})
    assert created.status_code == 201, created.text


def _tail(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.runtime.cli", "events", "tail", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_events_tail_joins_the_up_running_on_the_data_dir(up: EmbeddedUp) -> None:
    up.wait_ready()
    room = up.client.post("/api/v1/rooms", json={"roomName": "tailed"}).json()
    # Only the data dir: the NATS port `up` was given is not repeated here.
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEETPLANE_")}
    env["MEETPLANE_DATA_DIR"] = str(up.data_dir)
    tailed = _tail(
        env,
        "--subject",
        "meetplane.evt.room.>",
        "--from-start",
        "--count",
        "1",
        "--idle-timeout",
        "10",
    )
    assert tailed.returncode == 0, tailed.stderr
    event = json.loads(tailed.stdout.splitlines()[0])
    assert event["type"] == "RoomCreated" and event["subject_id"] == room["roomId"]


def test_events_tail_without_nats_says_so_in_one_line() -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEETPLANE_")}
    env["MEETPLANE_NATS_PORT"] = str(port)
    started = time.monotonic()
    tailed = _tail(env)
    assert tailed.returncode == 1
    assert time.monotonic() - started < 20
    lines = tailed.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in tailed.stderr, tailed.stderr
    assert f"cannot reach NATS at nats://127.0.0.1:{port}" in lines[0]
