"""Shared benchmark plumbing: processes on loopback, a closed-loop HTTP load, percentiles."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import httpx


def free_port() -> int:
    """A free loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start a child process logging to `log`."""
    handle = log.open("wb")
    return subprocess.Popen(
        args, env={**os.environ, **env}, stdout=handle, stderr=subprocess.STDOUT
    )


def python(*module_args: str) -> list[str]:
    """`python -m ...` with this interpreter."""
    return [sys.executable, "-m", *module_args]


def wait_http(url: str, timeout: float = 30.0) -> None:
    """Wait for an HTTP endpoint to answer 2xx."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).is_success:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(url)


@dataclass
class LoadResult:
    """Throughput and latency of one closed-loop load run."""

    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]

    @property
    def rps(self) -> float:
        """Requests per second."""
        return self.requests / self.seconds

    def percentile(self, p: float) -> float:
        """Latency percentile in ms."""
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

    def line(self, label: str) -> str:
        """One printable line."""
        return (
            f"{label:<34} {self.rps:9.1f} req/s   p50 {self.percentile(50):7.2f} ms   "
            f"p99 {self.percentile(99):7.2f} ms   errors {self.errors}"
        )


@dataclass
class Reply:
    """Status and body of one benchmark request."""

    status_code: int
    body: bytes


class Client:
    """A thin aiohttp session: httpx's pool degrades badly at 50 concurrent connections."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    async def post(
        self, url: str, json: Any = None, headers: dict[str, str] | None = None
    ) -> Reply:
        async with self.session.post(url, json=json, headers=headers) as response:
            return Reply(response.status, await response.read())

    async def get(self, url: str, headers: dict[str, str] | None = None) -> Reply:
        async with self.session.get(url, headers=headers) as response:
            return Reply(response.status, await response.read())


async def closed_loop(
    send: Callable[[Client, int], Awaitable[Reply]],
    total: int,
    concurrency: int,
    expected_status: int,
) -> LoadResult:
    """`concurrency` clients send `total` requests back to back."""
    latencies: list[float] = []
    errors = 0
    counter = iter(range(total))
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        client = Client(session)

        async def worker() -> None:
            nonlocal errors
            for i in counter:
                started = time.perf_counter()
                try:
                    response = await send(client, i)
                    ok = response.status_code == expected_status
                except (aiohttp.ClientError, TimeoutError):
                    ok = False
                latencies.append((time.perf_counter() - started) * 1000)
                errors += not ok

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return LoadResult(total, errors, elapsed, latencies)


class Platform:
    """NATS plus `meetplane serve` processes for a benchmark, with the gateway on `port`."""

    def __init__(
        self, root: Path, services: list[str], extra_env: dict[str, str] | None = None
    ) -> None:
        from services.runtime.natsserver import NatsServer

        self.root = root
        self.nats = NatsServer(root / "nats", free_port())
        self.nats.start()
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {
            "MEETPLANE_NATS_URL": self.nats.url,
            "MEETPLANE_DATA_DIR": str(root / "data"),
            "MEETPLANE_API_KEY": "bench",
            # `serve` refuses the built-in development secret.
            "MEETPLANE_LIVEKIT_API_SECRET": secrets.token_urlsafe(32),
            # Benchmarks measure throughput, not the per-key request budget.
            "MEETPLANE_RATE_LIMITS_ENABLED": "false",
            "MEETPLANE_HTTP_PORT": str(self.port),
            "MEETPLANE_LOG_LEVEL": "WARNING",
            "MEETPLANE_READY_SERVICES": ",".join(s for s in services if s != "gateway"),
            **(extra_env or {}),
        }
        spawn(
            python("services.runtime.cli", "streams", "declare"), self.env, root / "declare.log"
        ).wait()
        self.processes = [
            spawn(python("services.runtime.cli", "serve", s), self.env, root / f"{s}.log")
            for s in services
        ]

    def add(self, args: list[str], log: str) -> None:
        """Another process with the platform's environment."""
        self.processes.append(spawn(args, self.env, self.root / log))

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until the gateway's /readyz/platform answers 200 (every service up)."""
        wait_http(f"{self.base}/readyz/platform", timeout)

    def stop(self) -> None:
        """Terminate every process, then NATS."""
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.wait()
        self.nats.stop()
