"""The launcher's parts on their own: restart backoff, port checks, the data-dir lock, deadlines."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from contracts.commands import DEADLINE_HEADER
from services.runtime.commands import expired
from services.runtime.datadir import DataDirInUse, DataDirLock
from services.runtime.ports import PortNeed, PortUnavailable, check_ports
from services.runtime.rpc import deadline_header
from services.runtime.supervisor import STABLE_AFTER, Supervised, Supervisor, restart_delay


def test_restart_delay_doubles_up_to_a_ceiling() -> None:
    assert [restart_delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 4.0, 8.0]
    assert restart_delay(50) == 30.0


def exits_at_once() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "pass"])


def test_a_crashed_component_is_restarted_after_its_backoff() -> None:
    supervisor = Supervisor()
    component = supervisor.add(Supervised("flaky", exits_at_once))
    component.start()
    assert component.process is not None
    component.process.wait()
    t0 = component.started_at + 0.1
    supervisor.check(now=t0)  # notices the exit: first crash in a row
    assert (component.crashes, component.restarts) == (1, 0)
    supervisor.check(now=t0 + 0.4)
    assert component.restarts == 0  # still backing off
    supervisor.check(now=t0 + 0.51)
    assert component.restarts == 1
    component.process.wait()
    t1 = component.started_at + 0.1
    supervisor.check(now=t1)
    supervisor.check(now=t1 + 0.9)
    assert (component.crashes, component.restarts) == (2, 1)  # the delay doubled
    supervisor.check(now=t1 + 1.01)
    assert component.restarts == 2
    component.process.wait()


def test_a_long_run_starts_the_backoff_over() -> None:
    supervisor = Supervisor()
    component = supervisor.add(Supervised("steady", exits_at_once))
    component.start()
    assert component.process is not None
    component.process.wait()
    component.crashes = 6
    supervisor.check(now=component.started_at + STABLE_AFTER + 1)
    assert component.crashes == 1


def test_a_stopping_supervisor_restarts_nothing(tmp_path: Path) -> None:
    supervisor = Supervisor()
    component = supervisor.add(Supervised("quiet", exits_at_once, tmp_path / "quiet.pid"))
    component.start()
    supervisor.stop({}, budget=2.0)
    supervisor.check(now=component.started_at + 100)
    assert component.restarts == 0
    assert not (tmp_path / "quiet.pid").exists()


def test_a_busy_port_names_its_variable() -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        with pytest.raises(PortUnavailable) as refused:
            check_ports([PortNeed("NATS", "127.0.0.1", port, "MEETPLANE_NATS_PORT")])
    message = str(refused.value)
    assert f"port {port}" in message and "MEETPLANE_NATS_PORT" in message
    assert "\n" not in message


def test_one_port_for_two_components_is_refused() -> None:
    with pytest.raises(PortUnavailable, match=r"MEETPLANE_HTTP_PORT.*MEETPLANE_NATS_PORT"):
        check_ports(
            [
                PortNeed("the gateway", "127.0.0.1", 40999, "MEETPLANE_HTTP_PORT"),
                PortNeed("NATS", "127.0.0.1", 40999, "MEETPLANE_NATS_PORT"),
            ]
        )


def test_the_data_dir_lock_is_exclusive_and_names_its_owner(tmp_path: Path) -> None:
    first = DataDirLock(tmp_path)
    first.acquire()
    with pytest.raises(DataDirInUse) as refused:
        DataDirLock(tmp_path).acquire()
    assert f"pid {os.getpid()}" in str(refused.value)
    assert "MEETPLANE_DATA_DIR" in str(refused.value)
    first.release()
    second = DataDirLock(tmp_path)
    second.acquire()
    second.release()


def test_a_deadline_passes_with_time() -> None:
    header = deadline_header(2.0, now=1000.0)
    assert header == {DEADLINE_HEADER: "1002000"}
    assert not expired(header, now_ms=1_002_000)
    assert expired(header, now_ms=1_002_001)
    assert not expired({}, now_ms=10**15)  # no deadline: an older caller
    assert not expired({DEADLINE_HEADER: "soon"}, now_ms=0)


def test_stopping_follows_dependencies(tmp_path: Path) -> None:
    journal = tmp_path / "stopped"
    script = (
        "import signal, sys\n"
        "def stop(*_):\n"
        "    open(sys.argv[1], 'a').write(sys.argv[2] + '\\n')\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, stop)\n"
        "print('ready', flush=True)\n"
        "while True:\n"
        "    signal.pause()  # until the supervisor's SIGTERM\n"
    )
    supervisor = Supervisor()
    for name in ("infra", "back", "front"):

        def start(name: str = name) -> subprocess.Popen[bytes]:
            return subprocess.Popen(
                [sys.executable, "-c", script, str(journal), name], stdout=subprocess.PIPE
            )

        supervisor.add(Supervised(name, start)).start()
    for component in supervisor.components.values():
        assert component.process is not None and component.process.stdout is not None
        assert component.process.stdout.readline() == b"ready\n"  # its handler is set
    supervisor.stop({"back": ["front"], "infra": ["front", "back"]}, budget=10.0)
    assert journal.read_text().split() == ["front", "back", "infra"]
    assert all(not c.running for c in supervisor.components.values())
