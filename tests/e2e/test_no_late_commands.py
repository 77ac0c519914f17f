"""A request the gateway gave up on is never executed later, when NATS comes back.

The gateway's NATS server is killed under a steady load of `POST /rooms`, stays
down longer than the command timeout, and comes back.  nats-py keeps what is
published while it is disconnected and sends it on reconnect; before commands
carried deadlines (and the gateway refused to publish while disconnected) those
requests, each answered 503, created their rooms once NATS was back.

Topology: a three-node NATS cluster; the rooms service talks to nodes 1 and 2,
the gateway only to node 0, which is the one killed.  So the rooms service
listens all along and whatever the gateway flushes on reconnect does reach it,
every time (with a single server, the flush can race the service's own
resubscription and hide the defect).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from services.runtime.natsserver import NatsServer
from tests.support.cluster import Replica, declare_stream
from tests.support.infra import free_port
from tests.support.services import stream_events
from tests.support.services import wait_until as poll_until

COMMAND_TIMEOUT = 2.0
WORKERS = 6


@dataclass
class Attempt:
    name: str
    started: float
    status: int | None  # None: no HTTP answer at all


def pinned_cluster(root: Path, size: int = 3) -> list[NatsServer]:
    """A JetStream cluster that tells clients of no other node: a client stays on its own."""
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
            advertise=False,
        )
        for i in range(size)
    ]
    for server in servers:
        server.start()
    return servers


class Topology:
    """Three NATS nodes, one rooms service, one gateway (SQLite store in a temp dir)."""

    def __init__(self, root: Path) -> None:
        self.nats = pinned_cluster(root)
        self.all_urls = ",".join(n.url for n in self.nats)
        self.api_key = "late-key"
        http_port = free_port()
        self.base = f"http://127.0.0.1:{http_port}"
        asyncio.run(self._declare())
        base_env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("MEETPLANE_")},
            "MEETPLANE_DATA_DIR": str(root / "data"),
            "MEETPLANE_API_KEY": self.api_key,
            "MEETPLANE_COMMAND_TIMEOUT": str(COMMAND_TIMEOUT),
            "MEETPLANE_READY_SERVICES": "rooms",
            "MEETPLANE_LOG_FORMAT": "json",
            # `serve` refuses the built-in development secret.
            "MEETPLANE_LIVEKIT_API_SECRET": secrets.token_urlsafe(32),
        }
        rooms_env = {**base_env, "MEETPLANE_NATS_URL": f"{self.nats[1].url},{self.nats[2].url}"}
        gateway_env = {
            **base_env,
            "MEETPLANE_NATS_URL": self.nats[0].url,
            "MEETPLANE_HTTP_PORT": str(http_port),
        }
        self.rooms = Replica("rooms", 0, rooms_env, root)
        self.gateway = Replica("gateway", 0, gateway_env, root)
        self.rooms.start()
        self.gateway.start()
        self.client = httpx.Client(
            base_url=self.base, headers={"X-API-KEY": self.api_key}, timeout=10
        )

    async def _declare(self) -> None:
        await declare_stream(self.all_urls, 3, "late-setup")

    def wait_ready(self) -> None:
        wait_until(self._ready, 90, "the gateway to be ready")

    def _ready(self) -> bool:
        try:
            return self.client.get("/readyz/platform").status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        self.client.close()
        self.gateway.stop()
        self.rooms.stop()
        for server in self.nats:
            server.stop()


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Topology]:
    topology = Topology(tmp_path)
    try:
        topology.wait_ready()
        yield topology
    finally:
        topology.stop()


class Load:
    """Workers creating uniquely named rooms until told to stop, recording every outcome."""

    def __init__(self, platform: Topology) -> None:
        self.platform = platform
        self.attempts: list[Attempt] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._work) for _ in range(WORKERS)]

    def _work(self) -> None:
        with httpx.Client(
            base_url=self.platform.base,
            headers={"X-API-KEY": self.platform.api_key},
            timeout=30,
        ) as http:
            while not self.stop.is_set():
                name = f"late-{uuid.uuid4().hex[:12]}"
                started = time.monotonic()
                try:
                    status: int | None = http.post(
                        "/api/v1/rooms", json={"roomName": name}
                    ).status_code
                except httpx.HTTPError:
                    status = None
                with self.lock:
                    self.attempts.append(Attempt(name, started, status))
                self.stop.wait(0.02)  # pacing: a fast 503 must not spin the CPU

    def count(self, predicate: object) -> int:
        with self.lock:
            return sum(1 for a in self.attempts if predicate(a))  # type: ignore[operator]

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()


def wait_until(
    condition: Callable[[], object], timeout: float, what: str, detail: object = None
) -> None:
    poll_until(
        condition,
        timeout,
        0.05,
        message=lambda: f"{what} {detail() if detail else ''}",  # type: ignore[operator]
    )


def test_requests_failed_while_nats_was_down_never_run_after_it_returns(
    platform: Topology,
) -> None:
    with Load(platform) as load:
        wait_until(lambda: load.count(lambda a: a.status == 201) >= 20, 60, "load to run")
        platform.nats[0].kill()  # returns once the server process is gone
        # From here on nothing the gateway sends can reach the rooms service until
        # node 0 is back; earlier requests may have run with their answer lost.
        killed_at = time.monotonic()
        # Down for longer than the command timeout, with requests failing meanwhile.
        wait_until(
            lambda: (
                time.monotonic() - killed_at > COMMAND_TIMEOUT + 1
                and load.count(lambda a: a.started > killed_at and a.status != 201) >= 2 * WORKERS
            ),
            60,
            "requests to fail while NATS is down",
            lambda: Counter(a.status for a in load.attempts if a.started > killed_at),
        )
        back_at = time.monotonic()
        platform.nats[0].start()
        wait_until(
            lambda: load.count(lambda a: a.started > back_at and a.status == 201) >= 10,
            60,
            "rooms to be created again",
        )
    platform.wait_ready()

    # A barrier: a room created now is published after anything NATS delivered late.
    barrier = f"barrier-{uuid.uuid4().hex[:8]}"
    assert platform.client.post("/api/v1/rooms", json={"roomName": barrier}).status_code == 201

    def barrier_published() -> set[str] | None:
        names = {
            e["data"]["room"]["roomName"]
            for e in asyncio.run(stream_events(platform.all_urls, "meetplane.evt.room.>"))
            if e["type"] == "RoomCreated"
        }
        return names if barrier in names else None

    created = poll_until(barrier_published, 30, 0.2, message="the barrier room was never published")

    # Sent while node 0 was down and answered as failed: none may ever run.  (The
    # gateway's own retry of a request it could not send may succeed once NATS is back.)
    during_outage = [
        a for a in load.attempts if killed_at < a.started < back_at and a.status != 201
    ]
    executed_late = [a.name for a in during_outage if a.name in created]
    assert len(during_outage) >= 2 * WORKERS
    assert executed_late == [], (
        f"{len(executed_late)} of {len(during_outage)} requests answered as failed "
        "were executed anyway"
    )
    # Nothing accepted was lost.
    accepted = [a.name for a in load.attempts if a.status == 201]
    assert set(accepted) <= created
    # A request in flight at the kill may have run with its answer lost: one per worker.
    lost_answers = [
        a for a in load.attempts if a.started <= killed_at and a.status != 201 and a.name in created
    ]
    assert len(lost_answers) <= WORKERS
