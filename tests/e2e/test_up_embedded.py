"""`meetplane up` on its embedded default: own NATS, clean Ctrl-C, restart keeps data."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from tests.support.infra import free_port, free_port_range
from tests.support.services import wait_until


def start_up(data_dir: Path, http_port: int, nats_port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEETPLANE_")}
    storage_port = free_port()
    health = free_port_range(5, (http_port, nats_port, storage_port))
    env.update(
        {
            "MEETPLANE_DATA_DIR": str(data_dir),
            "MEETPLANE_HTTP_PORT": str(http_port),
            "MEETPLANE_NATS_PORT": str(nats_port),
            "MEETPLANE_STORAGE_PORT": str(storage_port),
            "MEETPLANE_HEALTH_PORT_BASE": str(health),
        }
    )
    services = os.environ.get("MEETPLANE_E2E_SERVICES")
    cmd = [sys.executable, "-m", "services.runtime.cli", "up"]
    if services:
        cmd += ["--services", services]
    return subprocess.Popen(cmd, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)


def wait_ready(base: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 180) -> None:

    def ready() -> bool:
        assert proc.poll() is None, log.read_text()
        return httpx.get(f"{base}/readyz/platform", timeout=2).status_code == 200

    wait_until(
        ready,
        timeout,
        0.3,
        ignore=(httpx.HTTPError,),
        message=lambda: f"not ready\n{log.read_text()[-3000:]}",
    )


def wait_printed(log: Path, text: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> str:
    """`up` prints its banner once it saw the gateway ready itself (it polls too)."""

    def printed() -> str | None:
        assert proc.poll() is None, log.read_text()
        out = log.read_text()
        return out if text in out else None

    return wait_until(printed, timeout, message=lambda: log.read_text())


def children_alive(data_dir: Path) -> list[int]:
    alive = []
    for pid_file in (data_dir / "run").glob("*.pid"):
        pid = int(pid_file.read_text())
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        alive.append(pid)
    return alive


def test_up_runs_embedded_stops_cleanly_and_continues_with_same_data(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    http_port, nats_port = free_port(), free_port()
    base = f"http://127.0.0.1:{http_port}"
    log = tmp_path / "up1.log"
    proc = start_up(data_dir, http_port, nats_port, log)
    try:
        wait_ready(base, proc, log)
        printed = wait_printed(log, "meetplane is up", proc)
        assert f"{base}/api/v1" in printed and f"{base}/docs" in printed
        assert f"nats://127.0.0.1:{nats_port}" in printed
        key = (data_dir / "api-key").read_text().strip()
        assert re.search(rf"API key:\s+in {re.escape(str(data_dir / 'api-key'))}", printed)
        assert key not in printed  # where it is, never the key
        assert httpx.get(f"{base}/docs").status_code == 200
        room = httpx.post(
            f"{base}/api/v1/rooms", json={"roomName": "persisted"}, headers={"X-API-KEY": key}
        ).json()
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0
    assert children_alive(data_dir) == []
    assert "meetplane stopped" in log.read_text()

    log2 = tmp_path / "up2.log"
    proc = start_up(data_dir, http_port, nats_port, log2)
    try:
        wait_ready(base, proc, log2)
        assert (data_dir / "api-key").read_text().strip() == key
        got = httpx.get(f"{base}/api/v1/rooms/{room['roomId']}", headers={"X-API-KEY": key})
        assert got.status_code == 200 and got.json()["roomName"] == "persisted"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    assert children_alive(data_dir) == []
