"""`meetplane up`: the whole platform on one machine, as separate processes.

Starts nats-server (unless `MEETPLANE_NATS_URL` points elsewhere), declares
the stream, starts a SeaweedFS S3 server, then every service and the gateway
as child processes, and stops them all on SIGINT/SIGTERM.  A crashed child is
restarted with backoff; state lives in the data dir, so a restart of `up`
continues where it stopped.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from services.runtime.logging import get_logger
from services.runtime.natsserver import NatsServer
from services.runtime.settings import RuntimeSettings

log = get_logger("meetplane.launcher")

SERVICES = ("rooms", "meetings", "recordings", "janitor", "identity", "gateway")

# Entry points by name: the runtime must not import service packages.
ENTRYPOINTS = {name: f"services.{name}.main:serve" for name in SERVICES}


def api_key(settings_dir: Path) -> str:
    """`MEETPLANE_API_KEY`, or a generated key kept in the data dir."""
    configured = os.environ.get("MEETPLANE_API_KEY")
    if configured:
        return configured
    path = settings_dir / "api-key"
    if path.exists():
        return path.read_text().strip()
    settings_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(24)
    path.write_text(key)
    path.chmod(0o600)
    return key


def storage_secret(settings_dir: Path) -> str:
    """The embedded S3 server's secret key, generated once and kept in the data dir."""
    configured = os.environ.get("MEETPLANE_STORAGE_SECRET_KEY")
    if configured:
        return configured
    path = settings_dir / "storage-secret"
    if not path.exists():
        settings_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(24))
        path.chmod(0o600)
    return path.read_text().strip()


@dataclass
class Child:
    """One supervised service process."""

    service: str
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started_at: float = field(default=0.0)
    pid_path: Path | None = None

    def start(self) -> None:
        """Spawn `python -m services.runtime.cli serve <service>`; its pid goes to run/."""
        log_file = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "services.runtime.cli", "serve", self.service],
            env=self.env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        log_file.close()
        self.started_at = time.monotonic()
        if self.pid_path is not None:
            self.pid_path.write_text(str(self.process.pid))

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after `timeout`."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class Platform:
    """The embedded platform: infrastructure plus all services."""

    def __init__(self, settings: RuntimeSettings, services: tuple[str, ...] = SERVICES) -> None:
        self.settings = settings
        self.services = services
        self.data_dir = Path(settings.data_dir).resolve()
        self.nats: NatsServer | None = None
        self.s3: object | None = None
        self.children: dict[str, Child] = {}
        self.stopping = False

    def child_env(self) -> dict[str, str]:
        """Environment for children: ours plus the resolved infrastructure addresses."""
        env = dict(os.environ)
        env["MEETPLANE_DATA_DIR"] = str(self.data_dir)
        env["MEETPLANE_NATS_URL"] = self.settings.effective_nats_url()
        env["MEETPLANE_API_KEY"] = api_key(self.data_dir)
        env.setdefault("MEETPLANE_STORAGE_ACCESS_KEY", "meetplane")
        env["MEETPLANE_STORAGE_SECRET_KEY"] = storage_secret(self.data_dir)
        env["PYTHONUNBUFFERED"] = "1"
        env["MEETPLANE_READY_SERVICES"] = ",".join(s for s in self.services if s != "gateway")
        return env

    def start_infrastructure(self) -> None:
        """nats-server (embedded unless a URL is configured), stream, S3 server."""
        if not self.settings.nats_url:
            self.nats = NatsServer(self.data_dir / "nats", self.settings.nats_port)
            self.nats.start()
        asyncio.run(self._declare_stream())
        self._start_s3()

    def _start_s3(self) -> None:
        if os.environ.get("MEETPLANE_STORAGE_ENDPOINT") or "recordings" not in self.services:
            return  # an external S3 is configured, or nothing needs one
        try:
            from services.runtime.seaweedfs import SeaweedFS
        except ImportError:  # pragma: no cover - storage not installed
            return
        port = int(os.environ.get("MEETPLANE_STORAGE_PORT", "18333"))
        server = SeaweedFS(
            data_dir=self.data_dir / "s3",
            s3_port=port,
            access_key=os.environ.get("MEETPLANE_STORAGE_ACCESS_KEY", "meetplane"),
            secret_key=storage_secret(self.data_dir),
        )
        server.start()
        server.wait_ready(60)
        self.s3 = server
        os.environ["MEETPLANE_STORAGE_ENDPOINT"] = server.endpoint

    async def _declare_stream(self) -> None:
        from services.runtime.nats import connect, ensure_stream

        nc = await connect(self.settings, "meetplane-launcher")
        try:
            await ensure_stream(nc, self.settings.stream_replicas, self.settings.stream_name)
        finally:
            await nc.close()

    def start_services(self) -> None:
        """Spawn every service; the gateway last so it finds the others answering."""
        logs = self.data_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        run = self.data_dir / "run"
        run.mkdir(parents=True, exist_ok=True)
        env = self.child_env()
        for service in self.services:
            child = Child(service, env, logs / f"{service}.log", pid_path=run / f"{service}.pid")
            child.start()
            self.children[service] = child

    def supervise_once(self) -> None:
        """Restart children that died (backoff grows with their restart count)."""
        for child in self.children.values():
            if child.process is not None and child.process.poll() is not None and not self.stopping:
                delay = min(2**child.restarts, 30)
                if time.monotonic() - child.started_at < delay:
                    continue
                child.restarts += 1
                log.warning(
                    "launcher.child_restarted",
                    service=child.service,
                    exit_code=child.process.returncode,
                    restarts=child.restarts,
                )
                child.start()

    def stop(self) -> None:
        """Stop services (gateway first), then S3, then NATS."""
        self.stopping = True
        for child in reversed(list(self.children.values())):
            child.stop()
        if self.s3 is not None:
            self.s3.stop()  # type: ignore[attr-defined]
        if self.nats is not None:
            self.nats.stop()


def _admin_line(data_dir: Path) -> str:
    """Where the root admin's password is (never the password itself)."""
    user = os.environ.get("MEETPLANE_ADMIN_USERNAME", "admin")
    if os.environ.get("MEETPLANE_ADMIN_PASSWORD"):
        return f"\n  admin:    {user} (password from MEETPLANE_ADMIN_PASSWORD)"
    return f"\n  admin:    {user} (first password in {data_dir / 'admin-password'})"


def run_up(
    settings: RuntimeSettings, http_host: str, http_port: int, services: tuple[str, ...] = SERVICES
) -> int:
    """Run the platform in the foreground until SIGINT/SIGTERM."""
    platform = Platform(settings, services)
    stop = False

    def _stop(signum: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    try:
        platform.start_infrastructure()
        platform.start_services()
        key = api_key(platform.data_dir)
        base = f"http://{http_host}:{http_port}"
        print(
            f"meetplane is up\n  gateway:  {base}/api/v1\n  docs:     {base}/docs\n"
            f"  NATS:     {settings.effective_nats_url()}\n  API key:  {key}\n"
            f"  data dir: {platform.data_dir}\n  logs:     {platform.data_dir / 'logs'}"
            + _admin_line(platform.data_dir),
            flush=True,
        )
        while not stop:
            platform.supervise_once()
            time.sleep(0.2)
    finally:
        platform.stop()
        print("meetplane stopped", flush=True)
    return 0
