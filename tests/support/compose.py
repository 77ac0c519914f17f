"""deploy/compose.yaml brought up with podman-compose from this checkout's images."""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx

from services.runtime import nats_auth
from tests.support.containers import images
from tests.support.infra import free_port
from tests.support.services import wait_until

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "deploy" / "compose.yaml"


def podman_compose() -> list[str]:
    """The podman-compose command of this environment (a test extra)."""
    local = Path(sys.executable).parent / "podman-compose"
    if local.exists():
        return [str(local)]
    found = shutil.which("podman-compose")
    if found is None:
        raise FileNotFoundError("podman-compose is missing: pip install the test extras")
    return [found]


class ComposePlatform:
    """The platform of deploy/compose.yaml, under a project name of its own."""

    def __init__(self, root: Path) -> None:
        self.project = f"mpt{uuid.uuid4().hex[:8]}"
        self.port = free_port()
        self.api_key = secrets.token_urlsafe(16)
        values = {
            "MEETPLANE_API_KEY": self.api_key,
            "MEETPLANE_ADMIN_PASSWORD": secrets.token_urlsafe(16),
            "MEETPLANE_AUTH_SIGNING_KEY": secrets.token_urlsafe(32),
            "POSTGRES_PASSWORD": secrets.token_urlsafe(16),
            "S3_ACCESS_KEY": "meetplane",
            "S3_SECRET_KEY": secrets.token_urlsafe(16),
            "MEETPLANE_LIVEKIT_API_KEY": "devkey",
            "MEETPLANE_LIVEKIT_API_SECRET": secrets.token_urlsafe(32),
            "MEETPLANE_PUBLISH": f"127.0.0.1:{self.port}",
            "MEETPLANE_PUBLIC_URL": f"http://127.0.0.1:{self.port}",
            "MEETPLANE_MEDIA_BACKEND": "local",
            **{
                f"NATS_PASSWORD_{user.upper()}": nats_auth.new_password()
                for user in nats_auth.USERS
            },
        }
        for name, tag in images().items():
            values[f"MEETPLANE_IMAGE_{name.upper().replace('-', '_')}"] = tag
        self.env_file = root / "compose.env"
        self.env_file.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
        self.log = root / "compose.log"
        self.base = f"http://127.0.0.1:{self.port}"
        self.client = httpx.Client(
            base_url=self.base, headers={"X-API-KEY": self.api_key}, timeout=20
        )

    def compose(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run podman-compose on this project."""
        cmd = [
            *podman_compose(),
            "-p",
            self.project,
            "-f",
            str(COMPOSE_FILE),
            "--env-file",
            str(self.env_file),
            *args,
        ]
        with self.log.open("a") as log:
            return subprocess.run(cmd, check=check, stdout=log, stderr=subprocess.STDOUT, text=True)

    def up(self) -> None:
        self.compose("up", "-d")

    def container(self, service: str) -> str:
        """The container name podman-compose gives a service."""
        return f"{self.project}_{service}_1"

    def inspect(self, service: str) -> dict[str, Any]:
        out = subprocess.run(
            ["podman", "inspect", self.container(service)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        return dict(json.loads(out)[0])

    def wait_ready(self, timeout: float = 200.0) -> None:
        """Until every service answers through the gateway.

        The timeout stays well under pytest's own (300 s), so a platform that never comes
        up fails here, with every container's state and logs, not in a bare pytest timeout.
        """
        last: list[str] = []

        def ready() -> bool:
            response = self.client.get("/readyz/platform")
            last[:] = [response.text]
            return response.status_code == 200

        wait_until(
            ready,
            timeout,
            1.0,
            ignore=(httpx.HTTPError,),
            message=lambda: f"compose platform not ready: {last}\n{self.logs()}",
        )

    def events(self) -> list[dict[str, Any]]:
        """Every integration event on the stream, read inside the gateway container."""
        out = subprocess.run(
            [
                "podman",
                "exec",
                self.container("gateway"),
                "meetplane",
                "events",
                "tail",
                "--from-start",
                "--idle-timeout",
                "3",
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout
        return [json.loads(line) for line in out.splitlines() if line.startswith("{")]

    def kill(self, service: str) -> int:
        """SIGKILL a service container's main process from the host (a crash, not a stop)."""
        import os
        import signal

        pid = int(self.inspect(service)["State"]["Pid"])
        os.kill(pid, signal.SIGKILL)
        return pid

    def logs(self, tail: int = 40) -> str:
        """Every container's state, then the last lines of each one's log."""
        states = subprocess.run(
            [
                "podman",
                "ps",
                "-a",
                "--filter",
                f"name={self.project}_",
                "--format",
                "{{.Names}} {{.Status}}",
            ],
            capture_output=True,
            text=True,
        )
        compose_log = self.log.read_text()[-4000:] if self.log.exists() else ""
        parts = [
            f"== podman-compose\n{compose_log}",
            f"== containers\n{states.stdout}{states.stderr}",
        ]
        services = ("gateway", "rooms", "meetings", "recordings", "janitor", "identity")
        for service in (*services, "nats", "postgres", "s3"):
            out = subprocess.run(
                ["podman", "logs", "--tail", str(tail), self.container(service)],
                capture_output=True,
                text=True,
            )
            parts.append(f"== {service}\n{out.stdout}{out.stderr}")
        return "\n".join(parts)

    def down(self) -> None:
        self.client.close()
        self.compose("down", "-v", "-t", "5", check=False)
