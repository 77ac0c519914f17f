"""A production-like topology on one machine: NATS cluster, PostgreSQL, replicas as processes."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from services.runtime.nats import connect, ensure_stream
from services.runtime.natsserver import NatsServer
from services.runtime.seaweedfs import SeaweedFS
from services.runtime.settings import RuntimeSettings
from tests.support.infra import free_port, nats_cluster
from tests.support.services import wait_for, wait_until


async def once_elected(action: Callable[[], Awaitable[Any]], timeout: float = 60) -> None:
    """Run `action` until it succeeds: a fresh NATS cluster first elects its meta leader."""
    errors: list[Exception] = []

    async def done() -> bool:
        try:
            await action()
        except Exception as exc:  # the cluster may still be electing its meta leader
            errors.append(exc)
            return False
        return True

    try:
        await wait_for(done, timeout=timeout, interval=0.5)
    except TimeoutError as exc:
        raise TimeoutError(f"never succeeded: {errors[-1:]!r}") from exc


async def declare_stream(nats_url: str, replicas: int, client: str) -> None:
    """Declare the event stream on a fresh NATS cluster, retrying while it elects its leader."""

    async def declare() -> None:
        nc = await connect(RuntimeSettings(nats_url=nats_url), client)
        try:
            await ensure_stream(nc, replicas=replicas)
        finally:
            await nc.close()

    await once_elected(declare)


class Replica:
    """One `meetplane serve <service>` process."""

    def __init__(self, service: str, index: int, env: dict[str, str], root: Path) -> None:
        self.service = service
        self.index = index
        self.env = env
        self.log_path = root / f"{service}-{index}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "services.runtime.cli", "serve", self.service],
            env=self.env,
            stdout=self.log_path.open("ab"),
            stderr=subprocess.STDOUT,
        )

    def kill9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Cluster:
    """NATS cluster + PostgreSQL stores + N replicas of each service + gateways."""

    def __init__(
        self,
        root: Path,
        dsn: str,
        schema_prefix: str,
        services: list[str],
        replicas: int = 2,
        nats_nodes: int = 3,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.root = root
        self.s3: SeaweedFS | None = None
        storage_env: dict[str, str] = {}
        if "recordings" in services:
            self.s3 = SeaweedFS(root / "s3", free_port(), "cluster", "cluster-secret")
            self.s3.start()
            self.s3.wait_ready()
            storage_env = {
                "MEETPLANE_STORAGE_ENDPOINT": self.s3.endpoint,
                "MEETPLANE_STORAGE_ACCESS_KEY": "cluster",
                "MEETPLANE_STORAGE_SECRET_KEY": "cluster-secret",
            }
        self.nats: list[NatsServer] = nats_cluster(root, nats_nodes)
        self.stream_replicas = min(3, nats_nodes)
        self.nats_url = ",".join(s.url for s in self.nats)
        self.api_key = "cluster-key"
        base_env = {
            **os.environ,
            "MEETPLANE_NATS_URL": self.nats_url,
            "MEETPLANE_STORE": "postgres",
            "MEETPLANE_POSTGRES_DSN": dsn,
            "MEETPLANE_POSTGRES_SCHEMA_PREFIX": schema_prefix,
            "MEETPLANE_API_KEY": self.api_key,
            # Replicas with their own data dirs must share the token signing key.
            "MEETPLANE_AUTH_SIGNING_KEY": "cluster-signing-key-0123456789abcdef",
            "MEETPLANE_LIVEKIT_API_SECRET": secrets.token_urlsafe(32),
            "MEETPLANE_LOG_FORMAT": "json",
            "MEETPLANE_READY_SERVICES": ",".join(services),
            "MEETPLANE_COMMAND_TIMEOUT": "10",
            **storage_env,
            **(extra_env or {}),
        }
        asyncio.run(self._declare())
        self.replicas: dict[str, list[Replica]] = {}
        for service in services:
            self.replicas[service] = [
                Replica(
                    service,
                    i,
                    {**base_env, "MEETPLANE_DATA_DIR": str(root / f"{service}-{i}")},
                    root,
                )
                for i in range(replicas)
            ]
        self.gateway_ports = [free_port() for _ in range(replicas)]
        self.replicas["gateway"] = [
            Replica(
                "gateway",
                i,
                {
                    **base_env,
                    "MEETPLANE_HTTP_PORT": str(port),
                    "MEETPLANE_DATA_DIR": str(root / f"gw-{i}"),
                },
                root,
            )
            for i, port in enumerate(self.gateway_ports)
        ]
        for group in self.replicas.values():
            for replica in group:
                replica.start()

    @property
    def gateways(self) -> list[str]:
        return [f"http://127.0.0.1:{p}" for p in self.gateway_ports]

    async def _declare(self) -> None:
        await declare_stream(self.nats_url, self.stream_replicas, "cluster-setup")

    def wait_ready(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        for base in self.gateways:
            wait_until(
                lambda base=base: (
                    httpx.get(f"{base}/readyz/platform", timeout=3).status_code == 200
                ),
                max(0.0, deadline - time.monotonic()),
                0.3,
                ignore=(httpx.HTTPError,),
                message=lambda base=base: f"{base} not ready\n{self.logs()}",
            )

    def logs(self, tail: int = 30, errors_only: bool = False) -> str:
        """The last `tail` lines of every process log (only its error lines if asked)."""
        out = []
        for path in sorted(self.root.glob("*.log")):
            lines = path.read_text(errors="replace").splitlines()
            if errors_only:
                lines = [line for line in lines if '"level": "error"' in line]
            lines = lines[-tail:]
            out.append(f"== {path.name}\n" + "\n".join(lines))
        return "\n".join(out)

    def stop(self) -> None:
        for group in self.replicas.values():
            for replica in group:
                replica.stop()
        for server in self.nats:
            server.stop()
        if self.s3 is not None:
            self.s3.stop()
