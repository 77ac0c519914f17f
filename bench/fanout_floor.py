"""Benchmark: the CPU floor of publishing one event to three consumers, at one client.

A room create is, between processes, one HTTP request, one command round trip
(the echo baseline of bench/perf.py) and then one event fanned out to three
consumer services (meetings, recordings, janitor), each pulling it from
JetStream, parsing it and acknowledging it.  This measures that fan-out with
consumers that do nothing else: three bare pull consumers, each its own
process, and one publisher sending an event, waiting until all three have
acknowledged it, then sending the next (one in flight, as at one client).
Twice: with nats-py's `fetch()` (a no-wait and a waiting request per call), and
with the pull request the services keep open (`services/runtime/pull.py`).

Printed: CPU per event summed over the consumers and nats-server (psutil) for
each, the same for one command round trip (a bare nats-py request/reply to a
bare responder) in the same run, and the ratios.  What a create costs beyond the
echo baseline cannot be below this floor while the services stay separate
processes that talk through NATS.

    python bench/fanout_floor.py [--events 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import nats
import psutil
from nats.js.api import AckPolicy, ConsumerConfig

from bench._harness import free_port
from contracts.events import RoomCreated, make_envelope, subject_of
from services.runtime.nats import ensure_stream

DONE = "bench.floor.done"


async def consumer(url: str, name: str, style: str) -> None:
    """Pull (`fetch` or `open`), parse, ack; then say which sequence is done (a core publish)."""
    from contracts.events import EventEnvelope
    from services.runtime.pull import PullStream

    nc = await nats.connect(url)
    js = nc.jetstream()
    await js.add_consumer(
        "MEETPLANE",
        ConsumerConfig(durable_name=name, ack_policy=AckPolicy.ALL, max_ack_pending=512),
    )
    if style == "open":
        pull = PullStream(nc, "MEETPLANE", name, 256)
        await pull.start()
    else:
        sub = await js.pull_subscribe_bind(name, stream="MEETPLANE")
    await nc.publish(DONE, b"ready")
    while True:
        if style == "open":
            msgs = await pull.take(256, timeout=1)
        else:
            try:
                msgs = await sub.fetch(256, timeout=1)
            except (TimeoutError, nats.errors.TimeoutError):
                continue
        if not msgs:
            continue
        for msg in msgs:
            EventEnvelope.model_validate_json(msg.data)
        await msgs[-1].ack()
        await nc.publish(DONE, str(msgs[-1].metadata.sequence.stream).encode())


async def responder(url: str) -> None:
    """Answer every request with its body."""
    nc = await nats.connect(url)

    async def echo(msg: nats.aio.msg.Msg) -> None:
        await msg.respond(msg.data)

    await nc.subscribe("bench.floor.echo", "floor", cb=echo)
    await nc.publish(DONE, b"ready")
    await asyncio.Event().wait()


def cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        times = psutil.Process(pid).cpu_times()
        total += times.user + times.system
    return total


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=2000)
    args = parser.parse_args()
    from services.runtime.natsserver import NatsServer

    root = Path(tempfile.mkdtemp(prefix="meetplane-floor-"))
    server = NatsServer(root / "nats", free_port())
    server.start()
    children: list[subprocess.Popen[bytes]] = []
    try:
        nc = await nats.connect(server.url)
        await ensure_stream(nc)
        js = nc.jetstream()
        done: asyncio.Queue[bytes] = asyncio.Queue()

        async def on_done(msg: nats.aio.msg.Msg) -> None:
            done.put_nowait(msg.data)

        await nc.subscribe(DONE, cb=on_done)
        await nc.flush()

        def spawn(*args: str) -> subprocess.Popen[bytes]:
            child = subprocess.Popen([sys.executable, __file__, "--run", *args])
            children.append(child)
            return child

        envelope = make_envelope(
            uuid.uuid4(),
            RoomCreated.model_validate(_room_created()),
            source="rooms",
            subject_id="bench",
        )
        body = envelope.model_dump_json().encode()
        fanout: dict[str, tuple[float, float]] = {}
        for style in ("fetch", "open"):
            group = [spawn("consumer", server.url, f"{style}-{n}", style) for n in "abc"]
            ready = 0
            while ready < len(group):  # (late reports of the group before are skipped)
                ready += await asyncio.wait_for(done.get(), 30) == b"ready"
            measured = [*(c.pid for c in group), server.process.pid]  # type: ignore[union-attr]
            before, started = cpu(measured), time.perf_counter()
            for _ in range(args.events):
                ack = await js.publish(subject_of("RoomCreated"), body)
                for _ in range(3):
                    while int(await done.get()) < ack.seq:
                        pass
            fanout[style] = (
                (cpu(measured) - before) / args.events,
                (time.perf_counter() - started) / args.events,
            )
            for child in group:
                child.terminate()
                child.wait()
            for n in "abc":
                await js.delete_consumer("MEETPLANE", f"{style}-{n}")

        responder_process = spawn("responder", server.url)
        while await asyncio.wait_for(done.get(), 30) != b"ready":
            pass
        echo_measured = [responder_process.pid, server.process.pid]  # type: ignore[union-attr]
        before = cpu(echo_measured)
        for _ in range(args.events):
            await nc.request("bench.floor.echo", body, timeout=5)
        echo_cpu = (cpu(echo_measured) - before) / args.events
        await nc.close()
        for style, label in (("fetch", "nats-py fetch()"), ("open", "pull kept open")):
            fanout_cpu, fanout_wall = fanout[style]
            print(
                f"one event to three bare consumers, {label:<16} cpu "
                f"{fanout_cpu * 1000:6.3f} ms/event   wall {fanout_wall * 1000:6.2f} ms"
                f"   x{fanout_cpu / echo_cpu:4.1f} request/reply"
            )
        print(
            f"one bare request/reply{'':<29} cpu {echo_cpu * 1000:6.3f} ms/request"
            f" (responder + nats-server)"
        )
        print(f"open pull / fetch(): {fanout['open'][0] / fanout['fetch'][0]:.2f}")
    finally:
        for child in children:
            child.terminate()
            child.wait()
        server.stop()


def _room_created() -> dict[str, object]:
    from bench.consumers import room_state

    return {"room": room_state(1)}


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--run":
        kind, url, *rest = sys.argv[2:]
        asyncio.run(consumer(url, *rest) if kind == "consumer" else responder(url))
    else:
        asyncio.run(main())
