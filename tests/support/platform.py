"""`meetplane up` as a subprocess, driven over HTTP like a user would."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import psutil

from tests.support.infra import NatsHandle, free_port, free_port_range, local_nats
from tests.support.services import wait_until

HEALTH_PORTS = 5  # one per service besides the gateway (services.runtime.launcher)


class _NotReady(Exception):
    """The gateway answered, but not 200 (the body says what is not ready)."""


class Platform:
    """The embedded platform started by `meetplane up` against a test-owned nats-server."""

    def __init__(
        self,
        root: Path,
        services: str | None = os.environ.get("MEETPLANE_E2E_SERVICES"),
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.root = root
        self.data_dir = root / "data"
        self.nats: NatsHandle = local_nats(root / "nats")
        self.http_port = free_port()
        self.api_key = "e2e-admin-key"
        self.hold_file = root / "outbox-hold"
        self.media_hold_file = root / "media-delete-hold"
        self.storage_port = free_port()
        self.health_port_base = free_port_range(HEALTH_PORTS, (self.http_port, self.storage_port))
        self.base = f"http://127.0.0.1:{self.http_port}"
        env = dict(os.environ)
        env.update(
            {
                "MEETPLANE_DATA_DIR": str(self.data_dir),
                "MEETPLANE_NATS_URL": self.nats.url,
                "MEETPLANE_HTTP_PORT": str(self.http_port),
                "MEETPLANE_API_KEY": self.api_key,
                "MEETPLANE_OUTBOX_HOLD_FILE": str(self.hold_file),
                "MEETPLANE_STORAGE_PORT": str(self.storage_port),
                "MEETPLANE_HEALTH_PORT_BASE": str(self.health_port_base),
                "MEETPLANE_RECORDINGS_HOLD_MEDIA_DELETE_FILE": str(root / "media-delete-hold"),
                "MEETPLANE_LOG_FORMAT": "json",
                "MEETPLANE_COMMAND_TIMEOUT": "5",
            }
        )
        env.update(extra_env or {})
        env.pop("MEETPLANE_STORAGE_ENDPOINT", None)
        self.env = env
        cmd = [sys.executable, "-m", "services.runtime.cli", "up"]
        if services:
            cmd += ["--services", services]
        self.log = (root / "up.log").open("wb")
        self.process = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.client = httpx.Client(
            base_url=self.base, headers={"X-API-KEY": self.api_key}, timeout=15
        )

    def wait_ready(self, timeout: float = 180.0, path: str = "/readyz/platform") -> None:
        """Wait until the gateway answers 200 on `path`."""

        def ready() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"meetplane up exited: {self.process.returncode}\n{self.logs()}")
            response = self.client.get(path)
            if response.status_code != 200:
                raise _NotReady(response.text)
            return True

        wait_until(
            ready,
            timeout,
            0.2,
            ignore=(httpx.HTTPError, _NotReady),
            message=lambda: f"platform not ready\n{self.logs()}",
        )

    def storage(self) -> object:
        """The embedded S3 server, as the recordings service sees it."""
        from services.recordings.storage import ObjectStorage, StorageSettings

        return ObjectStorage(
            StorageSettings(
                endpoint=f"127.0.0.1:{self.storage_port}",
                secret_key=(self.data_dir / "storage-secret").read_text().strip(),
            )
        )

    def pid(self, service: str) -> int:
        """The pid of a service child (the launcher writes run/<service>.pid)."""
        return int((self.data_dir / "run" / f"{service}.pid").read_text())

    def kill9(self, service: str) -> int:
        """SIGKILL one service child; the launcher restarts it."""
        pid = self.pid(service)
        os.kill(pid, signal.SIGKILL)
        return pid

    def wait_restarted(self, service: str, old_pid: int, timeout: float = 30.0) -> None:
        """Wait until the launcher has started a new process for `service`."""
        wait_until(
            lambda: self.pid(service) != old_pid,
            timeout,
            ignore=(FileNotFoundError, ValueError),
            message=f"{service} was not restarted",
        )

    def logs(self, tail: int = 60) -> str:
        """Last lines of the launcher and service logs (for failure messages)."""
        parts = []
        for path in [self.root / "up.log", *sorted((self.data_dir / "logs").glob("*.log"))]:
            if path.exists():
                lines = path.read_text(errors="replace").splitlines()[-tail:]
                parts.append(f"== {path.name}\n" + "\n".join(lines))
        return "\n".join(parts)

    def stop(self) -> None:
        """Ctrl-C the platform and stop NATS."""
        self.client.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        self.nats.stop()


class EmbeddedUp:
    """`meetplane up` on its embedded defaults (its own nats-server and S3) on free ports.

    For tests of the launcher itself: refusals, signals, supervision, orphans.
    """

    def __init__(
        self,
        root: Path,
        data_dir: Path | None = None,
        *,
        http_port: int | None = None,
        nats_port: int | None = None,
        storage_port: int | None = None,
        health_port_base: int | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.data_dir = data_dir or root / "data"
        self.http_port = http_port or free_port()
        self.nats_port = nats_port or free_port()
        self.storage_port = storage_port or free_port()
        self.health_port_base = health_port_base or free_port_range(
            HEALTH_PORTS, (self.http_port, self.nats_port, self.storage_port)
        )
        self.base = f"http://127.0.0.1:{self.http_port}"
        self.api_key = "embedded-key"
        env = {k: v for k, v in os.environ.items() if not k.startswith("MEETPLANE_")}
        env.update(
            {
                "MEETPLANE_DATA_DIR": str(self.data_dir),
                "MEETPLANE_HTTP_PORT": str(self.http_port),
                "MEETPLANE_NATS_PORT": str(self.nats_port),
                "MEETPLANE_STORAGE_PORT": str(self.storage_port),
                "MEETPLANE_HEALTH_PORT_BASE": str(self.health_port_base),
                "MEETPLANE_API_KEY": self.api_key,
                **(extra_env or {}),
            }
        )
        self.env = env
        self.log_path = root / "up.log"
        self.log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "services.runtime.cli", "up"],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.client = httpx.Client(
            base_url=self.base, headers={"X-API-KEY": self.api_key}, timeout=10
        )

    def output(self) -> str:
        """Everything `up` printed so far."""
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Wait until the gateway's /readyz/platform answers 200."""

        def ready() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"up exited {self.process.returncode}:\n{self.output()}")
            return self.client.get("/readyz/platform").status_code == 200

        wait_until(
            ready,
            timeout,
            0.2,
            ignore=(httpx.HTTPError,),
            message=lambda: f"not ready:\n{self.output()[-3000:]}",
        )

    def readyz(self) -> tuple[int, dict[str, object]]:
        """Status and body of /readyz/platform (what is down, by name)."""
        response = self.client.get("/readyz/platform")
        return response.status_code, response.json()

    def pid(self, component: str) -> int:
        """The pid the launcher wrote for a component (a service, nats-server, seaweedfs)."""
        return int((self.data_dir / "run" / f"{component}.pid").read_text())

    def tree(self) -> list[psutil.Process]:
        """Every process the launcher started, and theirs (none once it is gone)."""
        try:
            return psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def wait_exit(self, timeout: float) -> int:
        """The launcher's exit code, waiting at most `timeout` seconds."""
        return self.process.wait(timeout)

    def close(self) -> None:
        """Stop `up` if it still runs, and make sure nothing it started survives the test."""
        self.client.close()
        leftovers = []
        if self.process.poll() is None:
            leftovers = self.tree()
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for proc in leftovers:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        self.log.close()
