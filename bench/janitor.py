"""Benchmark: the janitor at a million pending timers.

Loads N timers into the janitor's store (bulk insert rate), runs the janitor as
its own process and reports its memory (RSS), the time from its start to the
first firing of timers that came due while it was down (recovery), and the
lateness p50/p99 of a burst of B timers due in the same second (publish time on
the stream minus due time).  Baseline for memory: the RSS of an idle janitor
over an empty store, measured in the same run.

    python bench/janitor.py [--timers 1000000] [--burst 10000] [--store sqlite|postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import nats
from nats.js.api import ConsumerConfig, DeliverPolicy

from bench._harness import free_port
from services.janitor.settings import JanitorSettings
from services.janitor.timers import TimerStore
from services.runtime.nats import connect, ensure_stream
from services.runtime.natsserver import NatsServer
from services.runtime.settings import RuntimeSettings
from services.runtime.store import view_engine


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def start_janitor(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "services.runtime.cli", "serve", "janitor"],
        env={**os.environ, **env},
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


async def collect(url: str, count: int, timeout: float) -> list[tuple[float, dict]]:
    """(receive time, event) of the first `count` janitor events on the stream."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    sub = await js.subscribe(
        "meetplane.evt.janitor.*",
        ordered_consumer=True,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
    )
    out: list[tuple[float, dict]] = []
    deadline = time.monotonic() + timeout
    while len(out) < count and time.monotonic() < deadline:
        try:
            msg = await sub.next_msg(timeout=1)
        except nats.errors.TimeoutError:
            continue
        info = msg.metadata.timestamp  # server time the event was stored (publish time)
        out.append((info.timestamp(), json.loads(msg.data)))
    await nc.close()
    return out


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--timers", type=int, default=1_000_000)
    parser.add_argument("--burst", type=int, default=10_000)
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="meetplane-bench-janitor-"))
    server = NatsServer(root / "nats", free_port())
    server.start()
    nc = await connect(RuntimeSettings(nats_url=server.url), "bench")
    await ensure_stream(nc)
    await nc.close()
    env = {
        "MEETPLANE_NATS_URL": server.url,
        "MEETPLANE_DATA_DIR": str(root / "data"),
        "MEETPLANE_LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
        "MEETPLANE_STORE": args.store,
        "MEETPLANE_TIMER_POLL_SECONDS": "0.2",
        "MEETPLANE_HOUSEKEEPING_INTERVAL": "3600",
    }
    if args.store == "postgres":
        env["MEETPLANE_POSTGRES_DSN"] = os.environ.get(
            "MEETPLANE_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test"
        )
        env["MEETPLANE_POSTGRES_SCHEMA_PREFIX"] = f"bench{os.getpid()}_"
    os.environ.update(env)
    store = TimerStore(view_engine(JanitorSettings(), "janitor"))
    try:
        # Baseline: an idle janitor over an empty store.
        janitor = start_janitor(env, root / "janitor.log")
        time.sleep(4)
        idle_rss = rss_mb(janitor.pid)
        janitor.terminate()
        janitor.wait()

        # Load: far-future timers plus a burst due 1 s after the janitor restarts.
        far = int(time.time() * 1000) + 10 * 365 * 86_400_000
        started = time.perf_counter()
        page = 20_000
        for offset in range(0, args.timers - args.burst, page):
            n = min(page, args.timers - args.burst - offset)
            store.set_many((f"room-{offset + i}", far + offset + i) for i in range(n))
        insert_s = time.perf_counter() - started
        overdue = int(time.time() * 1000) - 1000
        store.set_many((f"overdue-{i}", overdue) for i in range(100))

        restart = time.time()
        janitor = start_janitor(env, root / "janitor.log")
        first = await collect(server.url, 1, timeout=60)
        recovery_s = first[0][0] - restart if first else float("nan")
        await asyncio.sleep(3)
        due = int(time.time() * 1000) + 2000
        store.set_many((f"burst-{i}", due) for i in range(args.burst))
        events = await collect(server.url, 100 + args.burst, timeout=120)
        loaded_rss = rss_mb(janitor.pid)
        janitor.terminate()
        janitor.wait()
    finally:
        server.stop()
    lateness = [
        ts * 1000 - e["data"]["autoDeletionDate"]
        for ts, e in events
        if e["subject_id"].startswith("burst-")
    ]
    print(f"meetplane bench/janitor.py: {args.timers} timers ({args.store}), burst of {args.burst}")
    print(
        f"bulk insert rate: {(args.timers - args.burst) / insert_s:,.0f} timers/s "
        f"({insert_s:.1f} s)"
    )
    print(
        f"janitor RSS: idle over empty store {idle_rss:.0f} MB, with {args.timers} timers "
        f"pending {loaded_rss:.0f} MB (ratio {loaded_rss / idle_rss:.2f})"
    )
    print(f"restart recovery (start to first overdue firing): {recovery_s:.2f} s")
    if lateness:
        print(
            f"burst of {len(lateness)}: lateness p50 {percentile(lateness, 50):.0f} ms, "
            f"p99 {percentile(lateness, 99):.0f} ms, max {max(lateness):.0f} ms"
        )


if __name__ == "__main__":
    asyncio.run(main())
