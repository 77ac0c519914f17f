"""Benchmark: CPU per operation over every process, latency, and event propagation.

Runs `meetplane up` (embedded NATS, SeaweedFS, every service as its own process)
and, against the same nats-server, a bare FastAPI endpoint doing one NATS
request/reply to an echo responder: the baseline of the same run.  For each
operation it prints

- CPU per operation: user+system CPU seconds consumed during the run by every
  process of the platform (launcher, services, gateway, nats-server, S3 server),
  divided by the operations; for the baseline, the echo processes and nats-server.
  CPU time is robust on a shared machine where wall time is not.
- latency p50/p99 at 1 client and at 50 clients (closed loop).
- the ratio of CPU per operation to the baseline's.

The baseline and the operations run in alternating rounds (`--rounds`), each a
share of the requests, and each figure sums its rounds: a shared machine's speed
drifts by tens of percent within minutes, and a baseline measured once, minutes
away from an operation, moved the ratios with it.

Then event propagation: from a 201 of `POST /rooms` to the `RoomCreated` event
(a) seen by a JetStream subscriber and (b) processed (acknowledged) by every
durable consumer of room events (meetings, recordings, janitor), at one client
and under a burst of 600 creates with 50 in flight (at one client (b) includes the
consumers' linger, up to `MEETPLANE_CONSUMER_LINGER_MS`, spent waiting for a batch
to form).  And join cost at 1 vs 300 participants already in the meeting.

    python bench/perf.py [--requests 1000] [--rounds 4] [--burst 600] [--participants 300]
                         [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
import httpx
import nats
import psutil
from nats.js.api import ConsumerConfig, DeliverPolicy

from bench._harness import Client, Reply, free_port, wait_http
from services.runtime import nats_auth

ROOM_CONSUMERS = ("meetings-events", "recordings-events", "janitor-events")
API = "/api/v1"


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank) of `values`."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


@dataclass
class Measure:
    """CPU and latency of one operation run."""

    label: str
    ops: int
    cpu_s: float
    seconds: float
    latencies_ms: list[float]
    errors: int
    by_process: dict[str, float] = field(default_factory=dict)

    @property
    def cpu_ms_per_op(self) -> float:
        """CPU milliseconds per operation, summed over the measured processes."""
        return self.cpu_s * 1000 / self.ops

    def line(self, baseline: Measure | None = None) -> str:
        """One printable line."""
        ratio = f"  x{self.cpu_ms_per_op / baseline.cpu_ms_per_op:5.1f} echo" if baseline else ""
        return (
            f"{self.label:<40} cpu {self.cpu_ms_per_op:6.2f} ms/op{ratio}   "
            f"p50 {percentile(self.latencies_ms, 50):7.2f} ms   "
            f"p99 {percentile(self.latencies_ms, 99):7.2f} ms   "
            f"{self.ops / self.seconds:7.1f} op/s   errors {self.errors}"
        )

    def breakdown(self) -> str:
        """CPU ms per operation of each process, largest first (where the work goes)."""
        parts = sorted(self.by_process.items(), key=lambda kv: -kv[1])
        return "    " + "  ".join(f"{name} {cpu * 1000 / self.ops:.2f}" for name, cpu in parts)

    def merged(self, other: Measure) -> Measure:
        """This run and another of the same operation as one measure."""
        by_process = dict(self.by_process)
        for name, cpu in other.by_process.items():
            by_process[name] = by_process.get(name, 0.0) + cpu
        return Measure(
            self.label,
            self.ops + other.ops,
            self.cpu_s + other.cpu_s,
            self.seconds + other.seconds,
            self.latencies_ms + other.latencies_ms,
            self.errors + other.errors,
            by_process,
        )

    def as_dict(self) -> dict[str, Any]:
        """Figures for --json."""
        return {
            "cpu_ms_by_process": {
                name: round(cpu * 1000 / self.ops, 3) for name, cpu in self.by_process.items()
            },
            "ops": self.ops,
            "cpu_ms_per_op": round(self.cpu_ms_per_op, 3),
            "p50_ms": round(percentile(self.latencies_ms, 50), 2),
            "p99_ms": round(percentile(self.latencies_ms, 99), 2),
            "ops_per_s": round(self.ops / self.seconds, 1),
            "errors": self.errors,
        }


@dataclass
class ProcessSet:
    """A set of processes whose CPU time is summed (children found anew each time)."""

    roots: list[int]
    extra: list[int] = field(default_factory=list)

    def processes(self) -> list[psutil.Process]:
        """The roots, their descendants, and the extra pids."""
        found: dict[int, psutil.Process] = {}
        for pid in self.roots:
            try:
                root = psutil.Process(pid)
            except psutil.NoSuchProcess:
                continue
            found[pid] = root
            for child in root.children(recursive=True):
                found[child.pid] = child
        for pid in self.extra:
            try:
                found[pid] = psutil.Process(pid)
            except psutil.NoSuchProcess:
                continue
        return list(found.values())

    def cpu(self) -> dict[int, float]:
        """CPU seconds (user + system) of every process now."""
        times: dict[int, float] = {}
        for process in self.processes():
            try:
                t = process.cpu_times()
            except psutil.NoSuchProcess:
                continue
            times[process.pid] = t.user + t.system
        return times


def process_name(pid: int) -> str:
    """A short name: the service a `serve` process runs, else the executable's name."""
    try:
        args = psutil.Process(pid).cmdline()
    except psutil.Error:
        return "gone"
    if "serve" in args and args.index("serve") + 1 < len(args):
        return args[args.index("serve") + 1]
    if "up" in args:
        return "launcher"
    return Path(args[0]).name if args else "?"


def cpu_by_process(before: dict[int, float], after: dict[int, float]) -> dict[str, float]:
    """CPU seconds spent between two readings, by process name."""
    spent: dict[str, float] = {}
    for pid in after:
        name = process_name(pid)
        spent[name] = spent.get(name, 0.0) + after[pid] - before.get(pid, 0.0)
    return spent


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds spent between two readings (processes born in between count fully)."""
    return sum(after[pid] - before.get(pid, 0.0) for pid in after)


class Bench:
    """The platform, the echo baseline and the HTTP client."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.http_port = free_port()
        self.nats_port = free_port()
        self.base = f"http://127.0.0.1:{self.http_port}"
        # The embedded NATS takes only its users: the bench reads as `admin`, whose
        # password `up` would generate into the data dir (made here first, `up` reuses it).
        admin = nats_auth.user_password(root / "data", nats_auth.ADMIN)
        self.nats_url = f"nats://{nats_auth.ADMIN}:{admin}@127.0.0.1:{self.nats_port}"
        self.env = {
            **os.environ,
            "MEETPLANE_DATA_DIR": str(root / "data"),
            "MEETPLANE_HTTP_PORT": str(self.http_port),
            "MEETPLANE_NATS_PORT": str(self.nats_port),
            "MEETPLANE_STORAGE_PORT": str(free_port()),
            "MEETPLANE_HEALTH_PORT_BASE": "0",  # no health/metrics ports: nothing scrapes
            "MEETPLANE_API_KEY": "bench",
            # Benchmarks measure throughput, not the per-key request budget.
            "MEETPLANE_RATE_LIMITS_ENABLED": "false",
            "MEETPLANE_LOG_LEVEL": "WARNING",
            "MEETPLANE_LOG_FORMAT": "json",
        }
        self.env.pop("MEETPLANE_NATS_URL", None)
        self.env.pop("MEETPLANE_STORAGE_ENDPOINT", None)
        log = (root / "up.log").open("wb")
        self.up = subprocess.Popen(
            [sys.executable, "-m", "services.runtime.cli", "up"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.headers = {"X-API-KEY": "bench"}
        self.echo_port = free_port()
        self.echo: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        """Wait for the platform, then start the echo baseline on its NATS."""
        wait_http(f"{self.base}/readyz", 120)
        for args in (
            ["responder", self.nats_url],
            ["api", self.nats_url, str(self.echo_port)],
        ):
            log = (self.root / f"echo-{args[0]}.log").open("wb")
            self.echo.append(
                subprocess.Popen(
                    [sys.executable, "bench/echo_baseline.py", *args],
                    env=self.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        wait_http(f"http://127.0.0.1:{self.echo_port}/healthz", 30)

    def nats_pid(self) -> int:
        """The embedded nats-server (a child of the launcher)."""
        for child in psutil.Process(self.up.pid).children(recursive=True):
            if "nats-server" in " ".join(child.cmdline()):
                return child.pid
        raise RuntimeError("no nats-server child")

    def platform_processes(self) -> ProcessSet:
        """Every process of `meetplane up`."""
        return ProcessSet([self.up.pid])

    def echo_processes(self) -> ProcessSet:
        """The echo endpoint, its responder and nats-server."""
        return ProcessSet([p.pid for p in self.echo], [self.nats_pid()])

    def stop(self) -> None:
        """Ctrl-C the platform, stop the echo processes."""
        for process in self.echo:
            process.terminate()
        self.up.send_signal(signal.SIGINT)
        try:
            self.up.wait(60)
        except subprocess.TimeoutExpired:
            self.up.kill()
        for process in self.echo:
            process.wait()


Send = Callable[[Client, int], Awaitable[Reply]]


async def settled(nats_url: str, quiet: float = 0.2, timeout: float = 120.0) -> None:
    """Wait until the stream stops growing and every durable consumer has acked everything."""
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    try:
        deadline = time.perf_counter() + timeout
        last, stable_since = -1, time.perf_counter()
        while time.perf_counter() < deadline:
            info = await js.stream_info("MEETPLANE")
            consumers = await js.consumers_info("MEETPLANE")
            busy = any(c.num_pending or c.num_ack_pending for c in consumers)
            if info.state.last_seq != last or busy:
                last, stable_since = info.state.last_seq, time.perf_counter()
            elif time.perf_counter() - stable_since >= quiet:
                return
            await asyncio.sleep(0.02)
        raise TimeoutError("the platform did not settle")
    finally:
        await nc.close()


async def run(
    label: str,
    send: Send,
    total: int,
    concurrency: int,
    expected: int,
    processes: ProcessSet,
    settle: Callable[[], Awaitable[None]] | None = None,
) -> Measure:
    """A closed loop of `total` requests from `concurrency` clients, with CPU accounting.

    `settle` waits until the work the requests caused has finished everywhere (events
    published and consumed), so that deferred CPU is counted too.
    """
    latencies: list[float] = []
    errors = 0
    counter = iter(range(total))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=60)
    ) as session:
        client = Client(session)

        async def worker() -> None:
            nonlocal errors
            for i in counter:
                started = time.perf_counter()
                try:
                    reply = await send(client, i)
                    ok = reply.status_code == expected
                except (aiohttp.ClientError, TimeoutError):
                    ok = False
                latencies.append((time.perf_counter() - started) * 1000)
                errors += not ok

        before = processes.cpu()
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
        if settle is not None:
            await settle()
        after = processes.cpu()
    return Measure(
        label,
        total,
        cpu_delta(before, after),
        seconds,
        latencies,
        errors,
        cpu_by_process(before, after),
    )


async def idle_cpu(processes: ProcessSet, seconds: float) -> float:
    """CPU seconds per second the platform spends doing nothing (polls, heartbeats)."""
    before = processes.cpu()
    await asyncio.sleep(seconds)
    return cpu_delta(before, processes.cpu()) / seconds


def secret_of(room: dict[str, Any], role: str = "speaker") -> str:
    """A role's link secret from a room response."""
    url = room.get(f"{role}Url") or room["access"]["anonymous"][role]["url"]
    return str(url).split("secret=", 1)[1]


class Propagation:
    """Times from a create's 201 to its event on the stream and through every consumer."""

    def __init__(self, nats_url: str) -> None:
        self.nats_url = nats_url
        self.seen: dict[str, float] = {}
        self.seq: dict[str, int] = {}
        self.consumed: dict[str, float] = {}

    async def __aenter__(self) -> Propagation:
        self.nc = await nats.connect(self.nats_url)
        self.js = self.nc.jetstream()

        async def on_event(msg: Any) -> None:
            now = time.perf_counter()
            body = json.loads(msg.data)
            room_id = body["subject_id"]
            self.seen.setdefault(room_id, now)
            self.seq[room_id] = msg.metadata.sequence.stream

        self.sub = await self.js.subscribe(
            "meetplane.evt.room.RoomCreated",
            cb=on_event,
            ordered_consumer=True,
            config=ConsumerConfig(deliver_policy=DeliverPolicy.NEW),
        )
        self.polling = True
        self.poller = asyncio.create_task(self._poll_consumers())
        return self

    async def _poll_consumers(self) -> None:
        # A room's event counts as consumed once every durable consumer's ack floor
        # passed its stream sequence.
        while self.polling:
            floors = []
            for name in ROOM_CONSUMERS:
                try:
                    info = await self.js.consumer_info("MEETPLANE", name)
                    floors.append(info.ack_floor.stream_seq)
                except Exception:
                    floors.append(0)
            floor = min(floors)
            now = time.perf_counter()
            for room_id, seq in list(self.seq.items()):
                if seq <= floor and room_id not in self.consumed:
                    self.consumed[room_id] = now
            await asyncio.sleep(0.002)

    async def wait_for(self, room_ids: list[str], timeout: float = 60.0) -> None:
        """Until every room's event is seen and consumed."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if all(r in self.consumed for r in room_ids):
                return
            await asyncio.sleep(0.01)
        missing = [r for r in room_ids if r not in self.consumed]
        raise TimeoutError(f"{len(missing)} events not consumed")

    async def __aexit__(self, *_: object) -> None:
        self.polling = False
        await self.poller
        await self.sub.unsubscribe()
        await self.nc.close()


async def propagation(
    bench: Bench, total: int, concurrency: int
) -> tuple[list[float], list[float]]:
    """(201 → seen on stream, 201 → consumed by every consumer) in ms for `total` creates."""
    created: dict[str, float] = {}
    async with Propagation(bench.nats_url) as watch:
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:
            counter = iter(range(total))

            async def worker() -> None:
                for i in counter:
                    async with session.post(
                        f"{bench.base}{API}/rooms",
                        json={"roomName": f"burst {i}"},
                        headers=bench.headers,
                    ) as response:
                        body = await response.json()
                        created[body["roomId"]] = time.perf_counter()

            await asyncio.gather(*(worker() for _ in range(concurrency)))
        await watch.wait_for(list(created))
    seen = [max(0.0, (watch.seen[r] - t) * 1000) for r, t in created.items()]
    consumed = [max(0.0, (watch.consumed[r] - t) * 1000) for r, t in created.items()]
    return seen, consumed


async def join_cost(
    bench: Bench, participants: int, sample: int, rounds: int = 4
) -> tuple[Measure, Measure]:
    """CPU per join into a meeting with 1 participant vs one with `participants`.

    Each join adds a participant, so both meetings grow by `sample` during the
    measure (1 to 201 and 300 to 500 with the defaults).
    """
    processes = bench.platform_processes()
    async with httpx.AsyncClient(base_url=bench.base, headers=bench.headers, timeout=30) as client:
        small = (await client.post(f"{API}/rooms", json={"roomName": "join small"})).json()
        large = (await client.post(f"{API}/rooms", json={"roomName": "join large"})).json()
        for room, count in ((small, 1), (large, participants)):
            for i in range(count):
                response = await client.post(
                    f"{API}/rooms/{room['roomId']}/join",
                    json={"secret": secret_of(room), "participantName": f"seed {i}"},
                )
                assert response.status_code == 200, response.text

    def joiner(room: dict[str, Any], tag: str) -> Send:
        async def send(client: Client, i: int) -> Reply:
            return await client.post(
                f"{bench.base}{API}/rooms/{room['roomId']}/join",
                json={"secret": secret_of(room), "participantName": f"{tag} {i}"},
            )

        return send

    def settle() -> Awaitable[None]:
        return settled(bench.nats_url)

    await settle()
    # Alternating rounds, as for the echo baseline: the machine's speed drifts between
    # two runs measured one after the other by more than the difference sought.
    one: Measure | None = None
    many: Measure | None = None
    share = max(1, sample // rounds)
    for turn in range(rounds):
        small_run = await run(
            "join, meeting of 1", joiner(small, f"a{turn}"), share, 1, 200, processes, settle
        )
        large_run = await run(
            f"join, meeting of {participants}",
            joiner(large, f"b{turn}"),
            share,
            1,
            200,
            processes,
            settle,
        )
        one = small_run if one is None else one.merged(small_run)
        many = large_run if many is None else many.merged(large_run)
    assert one is not None and many is not None
    return one, many


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--burst", type=int, default=600)
    parser.add_argument("--participants", type=int, default=300)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="meetplane-perf-"))
    bench = Bench(root)
    results: dict[str, Any] = {}
    try:
        bench.start()
        platform = bench.platform_processes()
        echo_set = bench.echo_processes()
        echo_url = f"http://127.0.0.1:{bench.echo_port}/echo"
        rooms: list[dict[str, Any]] = []

        async def echo(client: Client, i: int) -> Reply:
            return await client.post(echo_url, json={"roomName": f"echo {i}"})

        async def create(client: Client, i: int) -> Reply:
            reply = await client.post(
                f"{bench.base}{API}/rooms", json={"roomName": f"bench {i}"}, headers=bench.headers
            )
            if reply.status_code == 201 and len(rooms) < 200:
                rooms.append(json.loads(reply.body))
            return reply

        async def get(client: Client, i: int) -> Reply:
            room = rooms[i % len(rooms)]
            return await client.get(f"{bench.base}{API}/rooms/{room['roomId']}", bench.headers)

        join_runs = iter(range(1000))

        def joiner() -> Send:
            tag = next(join_runs)  # names unique across runs: each join adds a participant

            async def join(client: Client, i: int) -> Reply:
                room = rooms[i % len(rooms)]
                return await client.post(
                    f"{bench.base}{API}/rooms/{room['roomId']}/join",
                    json={"secret": secret_of(room), "participantName": f"user {tag} {i}"},
                )

            return join

        def settle() -> Awaitable[None]:
            return settled(bench.nats_url)

        idle = await idle_cpu(platform, 5.0)
        print(f"{'platform idle':<40} cpu {idle * 1000:6.2f} ms/s (counted in every figure below)")
        results["idle_cpu_ms_per_s"] = round(idle * 1000, 2)
        # Warm every path once.
        await run("warm", echo, 100, 10, 200, echo_set)
        await run("warm", create, 100, 10, 201, platform, settle)
        for concurrency in (1, 50):
            n = args.requests if concurrency > 1 else max(300, args.requests // 2)
            share = max(1, n // args.rounds)
            labels = [
                f"POST /rooms (c={concurrency})",
                f"POST /rooms/{{id}}/join (c={concurrency})",
                f"GET /rooms/{{id}} (c={concurrency})",
            ]
            base: Measure | None = None
            totals: dict[str, Measure] = {}
            for _ in range(args.rounds):
                echo_run = await run(
                    f"FastAPI -> NATS echo (c={concurrency})",
                    echo,
                    share,
                    concurrency,
                    200,
                    echo_set,
                )
                base = echo_run if base is None else base.merged(echo_run)
                for label, send, expected in zip(
                    labels, (create, joiner(), get), (201, 200, 200), strict=True
                ):
                    measure = await run(label, send, share, concurrency, expected, platform, settle)
                    totals[label] = (
                        measure if label not in totals else totals[label].merged(measure)
                    )
            assert base is not None
            rows = [totals[label] for label in labels]
            print(base.line())
            for row in rows:
                print(row.line(base))
                print(row.breakdown())
            results[f"c{concurrency}"] = {
                "echo": base.as_dict(),
                **{
                    row.label.split(" (")[0]: {
                        **row.as_dict(),
                        "cpu_vs_echo": round(row.cpu_ms_per_op / base.cpu_ms_per_op, 2),
                    }
                    for row in rows
                },
            }

        for total, concurrency in ((50, 1), (args.burst, 50)):
            seen, consumed = await propagation(bench, total, concurrency)
            label = f"propagation, {total} creates at {concurrency} in flight"
            print(
                f"{label:<40} stream p50 {percentile(seen, 50):7.1f} ms  p99 "
                f"{percentile(seen, 99):7.1f} ms   all consumers p50 "
                f"{percentile(consumed, 50):7.1f} ms  p99 {percentile(consumed, 99):7.1f} ms"
            )
            results[f"propagation_c{concurrency}"] = {
                "stream_p50_ms": round(percentile(seen, 50), 1),
                "stream_p99_ms": round(percentile(seen, 99), 1),
                "consumers_p50_ms": round(percentile(consumed, 50), 1),
                "consumers_p99_ms": round(percentile(consumed, 99), 1),
            }

        one, many = await join_cost(bench, args.participants, 200, args.rounds)
        print(one.line())
        print(many.line())
        ratio = many.cpu_ms_per_op / one.cpu_ms_per_op
        print(f"join CPU at {args.participants} participants / at 1: {ratio:.2f}")
        results["join_cost"] = {
            "one": one.as_dict(),
            "many": many.as_dict(),
            "ratio": round(ratio, 2),
        }
    finally:
        bench.stop()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
