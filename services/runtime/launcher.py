"""`meetplane up`: the whole platform on one machine, as separate processes.

Before starting anything it locks the data dir (one `up` per data dir) and
checks that its ports are free; either refusal is one line on stderr.  Then it
starts nats-server (unless `MEETPLANE_NATS_URL` points elsewhere), declares the
stream, starts a SeaweedFS S3 server, then every service and the gateway, and
says "meetplane is up" once the gateway answers.  All of them are supervised
alike (restart with backoff, see `services.runtime.supervisor`) and die with
the launcher, even if it is killed (`services.runtime.process`).  SIGINT,
SIGTERM and SIGHUP stop everything in order within `STOP_BUDGET` seconds.
State lives in the data dir, so a restart of `up` continues where it stopped.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path
from subprocess import Popen
from types import FrameType

import httpx

from services.runtime import nats_auth
from services.runtime.datadir import DataDirInUse, DataDirLock, run_info_path
from services.runtime.logging import get_logger
from services.runtime.natsserver import NatsServer, ServerExited
from services.runtime.ports import PortNeed, PortUnavailable, check_ports
from services.runtime.process import spawn
from services.runtime.secrets import configured_or_generated
from services.runtime.settings import RuntimeSettings
from services.runtime.supervisor import Supervised, Supervisor

log = get_logger("meetplane.launcher")

SERVICES = ("rooms", "meetings", "recordings", "janitor", "identity", "gateway")

# Entry points by name: the runtime must not import service packages.
ENTRYPOINTS = {name: f"services.{name}.main:serve" for name in SERVICES}

NATS = "nats-server"
STORAGE = "seaweedfs"
DEFAULT_STORAGE_PORT = 18333
# Service i of SERVICES (the gateway aside) serves /healthz, /readyz and /metrics on
# MEETPLANE_HEALTH_PORT_BASE + i: rooms 18101, meetings 18102, recordings 18103,
# janitor 18104, identity 18105.  The gateway's are on its HTTP port.
DEFAULT_HEALTH_PORT_BASE = 18101
STOP_BUDGET = 4.5  # seconds from the signal to the last child gone
READY_TIMEOUT = 90.0


class LaunchRefused(Exception):
    """`up` cannot start; the message is the one line the user sees."""


class Interrupted(Exception):
    """A stop signal arrived while `up` was still starting."""


API_KEY_FILE = "api-key"
STORAGE_SECRET_FILE = "storage-secret"  # noqa: S105 (a file name)
LIVEKIT_SECRET_FILE = "livekit-api-secret"  # noqa: S105 (a file name)


def api_key(settings_dir: Path) -> str:
    """`MEETPLANE_API_KEY`, or a generated key kept in the data dir (mode 0600)."""
    return configured_or_generated("MEETPLANE_API_KEY", settings_dir, API_KEY_FILE)


def storage_secret(settings_dir: Path) -> str:
    """The embedded S3 server's secret key, generated once and kept in the data dir."""
    return configured_or_generated(
        "MEETPLANE_STORAGE_SECRET_KEY", settings_dir, STORAGE_SECRET_FILE
    )


def livekit_secret(settings_dir: Path) -> str:
    """The LiveKit API secret: configured, or generated once into the data dir.

    Never the built-in development value: whoever knows it can forge LiveKit's
    webhooks and sign participant tokens.
    """
    return configured_or_generated(
        "MEETPLANE_LIVEKIT_API_SECRET", settings_dir, LIVEKIT_SECRET_FILE
    )


def admin_credentials(settings: RuntimeSettings) -> RuntimeSettings:
    """`settings` with the embedded NATS's admin user, if the data dir has one."""
    password = nats_auth.user_password_if_any(Path(settings.data_dir), nats_auth.ADMIN)
    if password is None:
        return settings
    return settings.model_copy(
        update={
            "nats_user": nats_auth.ADMIN,
            "nats_password": password,
            "nats_inbox_prefix": nats_auth.inbox_prefix(nats_auth.ADMIN),
        }
    )


def _last_line(path: Path) -> str:
    if not path.exists():
        return ""
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


class Platform:
    """The embedded platform: infrastructure plus all services, under one supervisor."""

    def __init__(
        self,
        settings: RuntimeSettings,
        services: tuple[str, ...] = SERVICES,
        http_host: str = "127.0.0.1",
        http_port: int = 8080,
    ) -> None:
        self.settings = settings
        self.services = services
        self.http_host = http_host
        self.http_port = http_port
        self.data_dir = Path(settings.data_dir).resolve()
        self.lock = DataDirLock(self.data_dir)
        self.supervisor = Supervisor()
        self.nats: NatsServer | None = None
        self.s3: object | None = None
        self.storage_port = int(os.environ.get("MEETPLANE_STORAGE_PORT", DEFAULT_STORAGE_PORT))
        self.health_port_base = int(
            os.environ.get("MEETPLANE_HEALTH_PORT_BASE", DEFAULT_HEALTH_PORT_BASE)
        )
        self.run_dir = self.data_dir / "run"
        self.logs_dir = self.data_dir / "logs"

    # ---- before anything starts ------------------------------------------------------------

    @property
    def embedded_nats(self) -> bool:
        """Whether `up` runs its own nats-server."""
        return not self.settings.nats_url

    @property
    def embedded_storage(self) -> bool:
        """Whether `up` runs its own S3 server (the recordings service needs one)."""
        return not os.environ.get("MEETPLANE_STORAGE_ENDPOINT") and "recordings" in self.services

    def health_ports(self) -> dict[str, int]:
        """The health/metrics port of each started service (none with a base of 0)."""
        if not self.health_port_base:
            return {}
        return {
            service: self.health_port_base + index
            for index, service in enumerate(s for s in SERVICES if s != "gateway")
            if service in self.services
        }

    def metrics_urls(self) -> dict[str, str]:
        """Where each started service's Prometheus metrics are scraped."""
        urls = {
            service: f"http://127.0.0.1:{port}/metrics"
            for service, port in self.health_ports().items()
        }
        if "gateway" in self.services:
            urls["gateway"] = f"{self.base_url}/metrics"
        return urls

    def port_needs(self) -> list[PortNeed]:
        """Every port this `up` will listen on, with the variable that moves it."""
        needs = []
        if "gateway" in self.services:
            needs.append(
                PortNeed("the gateway", self.http_host, self.http_port, "MEETPLANE_HTTP_PORT")
            )
        if self.embedded_nats:
            needs.append(
                PortNeed("NATS", "127.0.0.1", self.settings.nats_port, "MEETPLANE_NATS_PORT")
            )
        if self.embedded_storage:
            needs.append(
                PortNeed("the S3 server", "127.0.0.1", self.storage_port, "MEETPLANE_STORAGE_PORT")
            )
        for service, port in self.health_ports().items():
            needs.append(
                PortNeed(
                    f"the {service} health port", "127.0.0.1", port, "MEETPLANE_HEALTH_PORT_BASE"
                )
            )
        return needs

    def preflight(self) -> None:
        """Lock the data dir, then check ports; raise `LaunchRefused` with one line."""
        try:
            self.lock.acquire()
        except DataDirInUse as exc:
            raise LaunchRefused(str(exc)) from None
        try:
            check_ports(self.port_needs())
        except PortUnavailable as exc:
            self.lock.release()
            raise LaunchRefused(str(exc)) from None

    # ---- start -------------------------------------------------------------------------------

    def launcher_settings(self) -> RuntimeSettings:
        """The launcher's own NATS settings: the admin user on the embedded server."""
        if not self.embedded_nats:
            return self.settings
        return admin_credentials(self.settings)

    def service_env(self, service: str) -> dict[str, str]:
        """`child_env` plus the service's own NATS user on the embedded server."""
        env = self.child_env()
        if self.embedded_nats:
            env["MEETPLANE_NATS_USER"] = service
            env["MEETPLANE_NATS_PASSWORD"] = nats_auth.user_password(self.data_dir, service)
            env["MEETPLANE_NATS_INBOX_PREFIX"] = nats_auth.inbox_prefix(service)
            env.pop("MEETPLANE_NATS_TOKEN", None)
        return env

    def child_env(self) -> dict[str, str]:
        """Environment for children: ours plus the resolved infrastructure addresses."""
        env = dict(os.environ)
        env["MEETPLANE_DATA_DIR"] = str(self.data_dir)
        env["MEETPLANE_NATS_URL"] = self.settings.effective_nats_url()
        env["MEETPLANE_API_KEY"] = api_key(self.data_dir)
        env.setdefault("MEETPLANE_STORAGE_ACCESS_KEY", "meetplane")
        env["MEETPLANE_STORAGE_SECRET_KEY"] = storage_secret(self.data_dir)
        env["MEETPLANE_LIVEKIT_API_SECRET"] = livekit_secret(self.data_dir)
        env["PYTHONUNBUFFERED"] = "1"
        env["MEETPLANE_READY_SERVICES"] = ",".join(s for s in self.services if s != "gateway")
        env["MEETPLANE_HTTP_HOST"] = self.http_host
        env["MEETPLANE_HTTP_PORT"] = str(self.http_port)
        return env

    def start(self) -> None:
        """Start infrastructure, then services; raise `LaunchRefused` if a part cannot start."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self._start_nats()
        self._declare_stream_or_refuse()
        self._start_storage()
        self._start_services()
        run_info_path(self.data_dir).write_text(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "nats_url": self.settings.effective_nats_url(),
                    "gateway": self.base_url,
                    "metrics": self.metrics_urls(),
                }
            )
        )

    def _start_nats(self) -> None:
        if not self.embedded_nats:
            return
        # Every client must sign in as one of the users of the permission table.
        config = nats_auth.write_server_config(self.data_dir, self.run_dir / "nats-server.conf")
        self.nats = NatsServer(self.data_dir / "nats", self.settings.nats_port, config=config)
        mark = self.nats.log_mark()
        self.supervisor.add(Supervised(NATS, self.nats.spawn, self.run_dir / f"{NATS}.pid")).start()
        try:
            self.nats.wait_ready(self.supervisor.components[NATS].process, mark)
        except (ServerExited, TimeoutError) as exc:
            raise LaunchRefused(
                f"nats-server did not start on port {self.nats.port} ({exc}); "
                f"see {self.nats.store_dir / 'nats-server.log'} (MEETPLANE_NATS_PORT moves it)"
            ) from None
        log.info("nats_server.started", url=self.nats.url)

    def _declare_stream_or_refuse(self) -> None:
        from services.runtime.nats import NatsUnreachable

        try:
            asyncio.run(self._declare_stream())
        except NatsUnreachable as exc:
            raise LaunchRefused(str(exc)) from None

    async def _declare_stream(self) -> None:
        from services.runtime.nats import connect_once, ensure_stream

        nc = await connect_once(self.launcher_settings(), "meetplane-launcher")
        try:
            await ensure_stream(nc, self.settings.stream_replicas, self.settings.stream_name)
        finally:
            await nc.close()

    def _start_storage(self) -> None:
        if not self.embedded_storage:
            return
        from services.runtime.seaweedfs import SeaweedFS

        server = SeaweedFS(
            data_dir=self.data_dir / "s3",
            s3_port=self.storage_port,
            access_key=os.environ.get("MEETPLANE_STORAGE_ACCESS_KEY", "meetplane"),
            secret_key=storage_secret(self.data_dir),
        )
        self.supervisor.add(Supervised(STORAGE, server.spawn, self.run_dir / f"{STORAGE}.pid"))
        for attempt in range(3):
            # A new spawn picks new internal ports if another process took one.
            self.supervisor.components[STORAGE].start()
            try:
                server.wait_ready(60)
                break
            except (RuntimeError, TimeoutError) as exc:
                if attempt < 2 and server.internal_port_taken():
                    continue
                raise LaunchRefused(
                    f"the S3 server did not start on port {self.storage_port} ({exc}); "
                    f"see {server.data_dir / 'weed.out'} (MEETPLANE_STORAGE_PORT moves it)"
                ) from None
        self.s3 = server
        os.environ["MEETPLANE_STORAGE_ENDPOINT"] = server.endpoint

    def _start_services(self) -> None:
        """Spawn every service; the gateway last so it finds the others answering."""
        for service in self.services:
            log_path = self.logs_dir / f"{service}.log"
            env = self.service_env(service)

            port = self.health_ports().get(service)
            if port is not None:
                env["MEETPLANE_HEALTH_PORT"] = str(port)

            def start(
                service: str = service, log_path: Path = log_path, env: dict[str, str] = env
            ) -> Popen[bytes]:
                return spawn(
                    [sys.executable, "-m", "services.runtime.cli", "serve", service],
                    env=env,
                    output=log_path,
                )

            self.supervisor.add(Supervised(service, start, self.run_dir / f"{service}.pid")).start()

    @property
    def base_url(self) -> str:
        """The gateway's URL."""
        return f"http://{self.http_host}:{self.http_port}"

    def wait_gateway(self, stopping: list[bool], timeout: float = READY_TIMEOUT) -> str | None:
        """Wait until the gateway is ready; returns what is still down if the wait timed out.

        Raises `LaunchRefused` if the gateway process exits before it answers.
        """
        if "gateway" not in self.services:
            return None
        host = "127.0.0.1" if self.http_host in ("0.0.0.0", "::") else self.http_host
        url = f"http://{host}:{self.http_port}/readyz/platform"
        deadline = time.monotonic() + timeout
        last = "no answer"
        gateway = self.supervisor.components["gateway"]
        while time.monotonic() < deadline and not stopping[0]:
            if not gateway.running and gateway.restarts == 0:
                assert gateway.process is not None
                raise LaunchRefused(
                    f"the gateway exited at start (code {gateway.process.returncode}): "
                    f"{_last_line(self.logs_dir / 'gateway.log')} "
                    f"(MEETPLANE_HTTP_PORT={self.http_port}; see {self.logs_dir / 'gateway.log'})"
                )
            self.supervisor.check()
            try:
                response = httpx.get(url, timeout=2.0)
                if response.status_code == 200:
                    return None
                last = ", ".join(response.json().get("down", [])) or response.text[:200]
            except (httpx.HTTPError, ValueError) as exc:
                last = type(exc).__name__
            time.sleep(0.2)
        return last

    # ---- run and stop --------------------------------------------------------------------------

    def supervise_once(self) -> None:
        """Restart components that died."""
        self.supervisor.check()

    def stop(self) -> None:
        """Gateway first, then the services; S3 once recordings is gone; NATS last.

        Services still publish and acknowledge while they stop, so NATS waits for
        all of them; S3 only for the recordings service, which alone uses it (its
        shutdown is the slowest, so it starts as early as it may).
        """
        started = time.monotonic()
        services = [s for s in self.services if s != "gateway"]
        after = {
            **{service: ["gateway"] for service in services},
            STORAGE: ["gateway", "recordings"],
            NATS: ["gateway", *services],
        }
        self.supervisor.stop(after, STOP_BUDGET)
        log.info("launcher.stopped", seconds=round(time.monotonic() - started, 2))
        run_info_path(self.data_dir).unlink(missing_ok=True)
        self.lock.release()


def _metrics_line(platform: Platform) -> str:
    """Where Prometheus scrapes each service (`meetplane status` reads them too)."""
    ports = platform.health_ports()
    parts = [f"{service} :{port}" for service, port in ports.items()]
    if "gateway" in platform.services:
        parts.insert(0, f"gateway {platform.base_url}/metrics")
    return ", ".join(parts) + (" (/metrics, /healthz, /readyz)" if ports else "")


def _key_line(data_dir: Path) -> str:
    """Where the API key is (never the key itself: stdout ends up in logs and scrollback)."""
    if os.environ.get("MEETPLANE_API_KEY"):
        return "\n  API key:  from MEETPLANE_API_KEY"
    return f"\n  API key:  in {data_dir / API_KEY_FILE}"


def _admin_line(data_dir: Path) -> str:
    """Where the root admin's password is (never the password itself)."""
    user = os.environ.get("MEETPLANE_ADMIN_USERNAME", "admin")
    if os.environ.get("MEETPLANE_ADMIN_PASSWORD"):
        return f"\n  admin:    {user} (password from MEETPLANE_ADMIN_PASSWORD)"
    return f"\n  admin:    {user} (first password in {data_dir / 'admin-password'})"


def run_up(
    settings: RuntimeSettings, http_host: str, http_port: int, services: tuple[str, ...] = SERVICES
) -> int:
    """Run the platform in the foreground until SIGINT, SIGTERM or SIGHUP."""
    platform = Platform(settings, services, http_host, http_port)
    try:
        platform.preflight()
    except LaunchRefused as exc:
        print(f"meetplane up: {exc}", file=sys.stderr, flush=True)
        return 1
    stopping = [False]
    starting = [True]

    def _stop(signum: int, _frame: FrameType | None) -> None:
        if not stopping[0]:
            log.info("launcher.stopping", signal=signal.Signals(signum).name)
        stopping[0] = True
        if starting[0]:
            raise Interrupted(signal.Signals(signum).name)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _stop)
    code = 0
    try:
        platform.start()
        not_ready = platform.wait_gateway(stopping)
        starting[0] = False
        if not stopping[0]:
            base = platform.base_url
            print(
                f"meetplane is up\n  gateway:  {base}/api/v1\n  docs:     {base}/docs\n"
                f"  NATS:     {settings.effective_nats_url()}"
                + _key_line(platform.data_dir)
                + f"\n  data dir: {platform.data_dir}\n  logs:     {platform.logs_dir}"
                + f"\n  metrics:  {_metrics_line(platform)}"
                + _admin_line(platform.data_dir),
                flush=True,
            )
            if not_ready:
                print(f"  not ready yet: {not_ready} (see {base}/readyz/platform)", flush=True)
        while not stopping[0]:
            platform.supervise_once()
            time.sleep(0.2)
    except Interrupted:
        pass
    except LaunchRefused as exc:
        print(f"meetplane up: {exc}", file=sys.stderr, flush=True)
        code = 1
    finally:
        starting[0] = False
        platform.stop()
        print("meetplane stopped", flush=True)
    return code
