"""Benchmark: how many integration events per second each service's consumer handles.

For each consumer, a fresh nats-server gets a backlog of N realistic events on
the MEETPLANE stream (RoomCreated with a whole room state; for the rooms
service, MeetingStarted/MeetingEnded of rooms it created), then the service
starts alone and drains it.  The rooms service twice: `rooms`, the process that
created the rooms, still running (steady state), and `rooms-cold`, one restarted
before the events arrive (it first loads every room once).  Printed per
consumer: events/s from the first to the last acknowledgement, and the
service's CPU per event (psutil).  A
baseline in the same run: a bare nats-py pull consumer that only parses and
acks the same backlog (what fetching costs without doing anything).

    python bench/consumers.py [--events 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import nats
import psutil
from nats.js.api import AckPolicy, ConsumerConfig

from bench._harness import free_port
from contracts.events import (
    MeetingEnded,
    MeetingStarted,
    RoomCreated,
    make_envelope,
    subject_of,
)
from services.runtime.nats import ensure_stream
from tests.support.rooms import room_state

CONSUMERS = {
    "meetings": "meetings-events",
    "recordings": "recordings-events",
    "janitor": "janitor-events",
    "rooms": "rooms-events",
    "rooms-cold": "rooms-events",
}


def bench_room(i: int) -> dict[str, Any]:
    """A room as RoomCreated carries it (every third with an auto-deletion date)."""
    return room_state(
        f"bench_room_{i}-abcdef",
        f"bench room {i}",
        creationDate=1_700_000_000_000 + i,
        autoDeletionDate=4_000_000_000_000 + i if i % 3 == 0 else None,
    )


async def backlog(url: str, service: str, count: int) -> int:
    """Publish the events `service` consumes; returns the last stream sequence."""
    nc = await nats.connect(url)
    await ensure_stream(nc)
    js = nc.jetstream()
    futures = []
    for i in range(count):
        if service == "rooms":
            meeting = uuid.uuid4().hex
            data: Any = (
                MeetingStarted(meetingId=meeting, roomId=f"bench_room_{i}-abcdef", startedAt=1)
                if i % 2 == 0
                else MeetingEnded(
                    meetingId=meeting, roomId=f"bench_room_{i}-abcdef", reason="x", endedAt=2
                )
            )
            source = "meetings"
        else:
            data, source = RoomCreated.model_validate({"room": bench_room(i)}), "rooms"
        envelope = make_envelope(uuid.uuid4(), data, source=source, subject_id=f"s{i}")
        futures.append(
            await js.publish_async(
                subject_of(type(data).__name__), envelope.model_dump_json().encode()
            )
        )
    acks = await asyncio.gather(*futures)
    await nc.close()
    return int(acks[-1].seq)


async def drain(
    url: str, durable: str, last: int, process: psutil.Process | None
) -> tuple[float, float]:
    """Seconds from the first ack to the last, and CPU seconds spent meanwhile."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    started = cpu_start = None
    while True:
        try:
            info = await js.consumer_info("MEETPLANE", durable)
            floor = info.ack_floor.stream_seq
        except Exception:
            floor = 0
        now = time.perf_counter()
        if started is None and floor > 0:
            started = now
            cpu_start = cpu(process)
        if process is not None and process.status() == psutil.STATUS_ZOMBIE:
            raise RuntimeError(f"the {durable} service exited; see its log")
        if floor >= last:
            await nc.close()
            assert started is not None and cpu_start is not None
            return now - started, cpu(process) - cpu_start
        await asyncio.sleep(0.005)


def cpu(process: psutil.Process | None) -> float:
    """User + system CPU seconds of a process (0 for the in-process baseline)."""
    if process is None:
        return time.process_time()
    times = process.cpu_times()
    return times.user + times.system


async def bare_baseline(url: str, last: int) -> tuple[float, float]:
    """A nats-py pull consumer that parses each envelope and acks, in batches of 256."""
    from contracts.events import EventEnvelope

    nc = await nats.connect(url)
    js = nc.jetstream()
    await js.add_consumer(
        "MEETPLANE",
        ConsumerConfig(durable_name="bare", ack_policy=AckPolicy.ALL, max_ack_pending=512),
    )
    sub = await js.pull_subscribe_bind("bare", stream="MEETPLANE")
    started = time.perf_counter()
    cpu_start = time.process_time()
    seen = 0
    while seen < last:
        msgs = await sub.fetch(256, timeout=5)
        for msg in msgs:
            EventEnvelope.model_validate_json(msg.data)
        await msgs[-1].ack()
        seen = msgs[-1].metadata.sequence.stream
    elapsed, spent = time.perf_counter() - started, time.process_time() - cpu_start
    await nc.close()
    return elapsed, spent


async def bench_service(service: str, count: int, root: Path) -> dict[str, float]:
    from services.runtime.natsserver import NatsServer

    nats_server = NatsServer(root / service / "nats", free_port())
    nats_server.start()
    try:
        running: subprocess.Popen[bytes] | None = None
        if service == "rooms":
            # Steady state: the rooms service that created the rooms keeps running and
            # consumes the meeting events as they pile up (a restarted one first loads
            # every room it has not seen since: that cold start is `rooms-cold`).
            last, running = await backlog_rooms(nats_server.url, count, root)
        elif service == "rooms-cold":
            last, first = await backlog_rooms(nats_server.url, count, root, events=False)
            first.terminate()
            first.wait()
            last = await meeting_events(nats_server.url, root / service)
        else:
            last = await backlog(nats_server.url, service, count)
        env = {
            **os.environ,
            "MEETPLANE_NATS_URL": nats_server.url,
            "MEETPLANE_DATA_DIR": str(root / service / "data"),
            "MEETPLANE_LOG_LEVEL": "WARNING",
            "MEETPLANE_ALLOW_DEV_SECRETS": "1",  # a throwaway data dir, no LiveKit
        }
        s3 = None
        if service == "recordings":
            from services.runtime.seaweedfs import SeaweedFS

            s3 = SeaweedFS(root / "s3", free_port(), "meetplane", "bench-secret-key")
            s3.start()
            s3.wait_ready(60)
            env |= {
                "MEETPLANE_STORAGE_ENDPOINT": s3.endpoint,
                "MEETPLANE_STORAGE_ACCESS_KEY": "meetplane",
                "MEETPLANE_STORAGE_SECRET_KEY": "bench-secret-key",
            }
        if service == "bare":
            elapsed, spent = await bare_baseline(nats_server.url, last)
        else:
            log = (root / f"{service}.log").open("wb")
            child = running or subprocess.Popen(
                [sys.executable, "-m", "services.runtime.cli", "serve", service.split("-")[0]],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                elapsed, spent = await drain(
                    nats_server.url, CONSUMERS[service], last, psutil.Process(child.pid)
                )
            finally:
                child.terminate()
                child.wait()
                if s3 is not None:
                    s3.stop()
        return {
            "events": count,
            "events_per_s": count / elapsed,
            "cpu_ms_per_event": spent * 1000 / count,
        }
    finally:
        nats_server.stop()


async def backlog_rooms(
    url: str, count: int, root: Path, events: bool = True
) -> tuple[int, subprocess.Popen[bytes]]:
    """For the rooms consumer: create the rooms through its command, then meeting events.

    Returns the last stream sequence and the rooms service, still running.
    """
    root = root / ("rooms" if events else "rooms-cold")
    env = {
        **os.environ,
        "MEETPLANE_NATS_URL": url,
        "MEETPLANE_DATA_DIR": str(root / "data"),
        "MEETPLANE_LOG_LEVEL": "WARNING",
        "MEETPLANE_ALLOW_DEV_SECRETS": "1",
    }
    nc = await nats.connect(url)
    await ensure_stream(nc)
    await nc.close()
    log = (root / "rooms-setup.log").open("wb")
    child = subprocess.Popen(
        [sys.executable, "-m", "services.runtime.cli", "serve", "rooms"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    from faststream.nats import NatsBroker

    from contracts.commands import command_subject

    broker = NatsBroker(url)
    await broker.connect()
    ids: list[str] = []
    for i in range(count // 2):
        for _ in range(100):
            try:
                reply = await broker.request(
                    {"request": {"roomName": f"bench room {i}"}},
                    command_subject("rooms", "create"),
                    timeout=5,
                )
                ids.append((await reply.decode())["result"]["roomId"])  # type: ignore[index]
                break
            except Exception:
                await asyncio.sleep(0.1)
    await broker.stop()
    (root / "rooms-ids.txt").write_text("\n".join(ids))
    last = await meeting_events(url, root) if events else 0
    return last, child


async def meeting_events(url: str, root: Path) -> int:
    """A MeetingStarted and a MeetingEnded for every room `backlog_rooms` created."""
    ids = (root / "rooms-ids.txt").read_text().split()
    nc = await nats.connect(url)
    js = nc.jetstream()
    futures = []
    for room_id in ids:
        meeting = uuid.uuid4().hex
        for data in (
            MeetingStarted(meetingId=meeting, roomId=room_id, startedAt=1),
            MeetingEnded(meetingId=meeting, roomId=room_id, reason="ended_by_admin", endedAt=2),
        ):
            envelope = make_envelope(uuid.uuid4(), data, source="meetings", subject_id=meeting)
            futures.append(
                await js.publish_async(
                    subject_of(type(data).__name__), envelope.model_dump_json().encode()
                )
            )
    acks = await asyncio.gather(*futures)
    await nc.close()
    return int(acks[-1].seq)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--services", default="bare,meetings,recordings,janitor,rooms,rooms-cold")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="meetplane-bench-consumers-"))
    print(f"meetplane bench/consumers.py: a backlog of {args.events} events per consumer")
    for service in args.services.split(","):
        result = await bench_service(service, args.events, root)
        label = "bare nats-py fetch+parse+ack" if service == "bare" else CONSUMERS[service]
        if service == "rooms-cold":
            label += " (restarted)"
        print(
            f"{label:<30} {result['events_per_s']:9.0f} events/s   "
            f"cpu {result['cpu_ms_per_event']:6.3f} ms/event"
        )


if __name__ == "__main__":
    asyncio.run(main())
