"""Benchmark: POST /api/v1/rooms end to end vs a bare FastAPI → NATS echo, same run.

Both paths are HTTP → FastAPI → NATS request/reply → another process; the
ratio is what the rooms slice (validation, event store commit, projection,
outbox) costs on top of the transport.  Also: loading a room with 10,000
events with and without snapshots.

    python bench/rooms.py [--requests 2000] [--concurrency 50] [--events 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._harness import Platform, closed_loop, free_port, wait_http


def snapshot_figures(events: int, root: Path) -> tuple[float, float]:
    """Seconds to load a room with `events` events, with and without snapshots."""
    from contracts.rooms import CreateRoomRequest
    from services.rooms.application import RoomsApplication
    from services.rooms.domain import Room, aggregate_id

    env = {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": str(root / "snap.sqlite"),
        "SINGLE_ROW_TRACKING": "f",
    }
    RoomsApplication.snapshotting_intervals = {Room: 100}
    with_snapshots = RoomsApplication(env={**env, "IS_SNAPSHOTTING_ENABLED": "y"})
    room_id = with_snapshots.create_room(CreateRoomRequest(roomName="long history")).roomId
    room = with_snapshots.load(aggregate_id(room_id))
    for i in range(events - 1):
        room.rename(f"name {i}")
        if i % 100 == 99:
            with_snapshots.save(room)
    with_snapshots.save(room)

    def timed_load(app: RoomsApplication) -> float:
        best = float("inf")
        for _ in range(5):
            started = time.perf_counter()
            app.repository.get(aggregate_id(room_id))
            best = min(best, time.perf_counter() - started)
        return best

    snap = timed_load(with_snapshots)
    RoomsApplication.snapshotting_intervals = {}
    without = RoomsApplication(env={**env, "IS_SNAPSHOTTING_ENABLED": "n"})
    plain = timed_load(without)
    return snap, plain


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--events", type=int, default=10_000)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="meetplane-bench-"))
    platform = Platform(root, ["rooms", "gateway"])
    echo_port = free_port()
    platform.add(
        [sys.executable, "bench/echo_baseline.py", "responder", platform.nats.url], "r.log"
    )
    platform.add(
        [sys.executable, "bench/echo_baseline.py", "api", platform.nats.url, str(echo_port)],
        "echo.log",
    )
    try:
        platform.wait_ready()
        wait_http(f"http://127.0.0.1:{echo_port}/healthz")
        echo_url = f"http://127.0.0.1:{echo_port}/echo"
        rooms_url = f"{platform.base}/api/v1/rooms"
        headers = {"X-API-KEY": "bench"}

        async def echo(client, i):  # type: ignore[no-untyped-def]
            return await client.post(echo_url, json={"roomName": f"bench {i}"})

        async def create(client, i):  # type: ignore[no-untyped-def]
            return await client.post(rooms_url, json={"roomName": f"bench {i}"}, headers=headers)

        # Warm both paths, then measure them back to back.
        await closed_loop(echo, 100, args.concurrency, 200)
        await closed_loop(create, 100, args.concurrency, 201)
        baseline = await closed_loop(echo, args.requests, args.concurrency, 200)
        rooms = await closed_loop(create, args.requests, args.concurrency, 201)
    finally:
        platform.stop()

    snap, plain = snapshot_figures(args.events, root)
    print(
        f"meetplane bench/rooms.py: {args.requests} requests, {args.concurrency} concurrent clients"
    )
    print(baseline.line("(a) FastAPI + NATS echo (baseline)"))
    print(rooms.line("(b) POST /api/v1/rooms end to end"))
    print(
        f"ratio b/a throughput: {rooms.rps / baseline.rps:.2f}   "
        f"p99 latency b/a: {rooms.percentile(99) / baseline.percentile(99):.2f}"
    )
    print(
        f"load a room with {args.events} events: with snapshots {snap * 1000:.2f} ms, "
        f"without {plain * 1000:.2f} ms, speed-up x{plain / snap:.1f}"
    )


if __name__ == "__main__":
    asyncio.run(main())
