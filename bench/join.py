"""Benchmark: joins per second through the gateway vs raw LiveKit token signing, same run.

Joins go HTTP → gateway → NATS → meetings service (room read model lookup,
secret check, event-sourced join with optimistic concurrency, token signing) at
50 concurrent clients, spread over a few rooms.  The baseline is the raw
`AccessToken(...).to_jwt()` signing rate in this process.

    python bench/join.py [--joins 2000] [--concurrency 50] [--rooms 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from livekit import api

from bench._harness import Platform, closed_loop


def signing_rate(seconds: float = 2.0) -> float:
    """Tokens per second from the SDK alone."""
    grants = api.VideoGrants(room_join=True, room="bench", can_publish=True, can_subscribe=True)
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        api.AccessToken("devkey", "meetplane-dev-secret-that-is-at-least-32-chars").with_identity(
            f"user-{count}"
        ).with_name("User").with_grants(grants).to_jwt()
        count += 1
    return count / (time.perf_counter() - started)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--joins", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rooms", type=int, default=20)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="meetplane-bench-join-"))
    platform = Platform(root, ["rooms", "meetings", "gateway"])
    base = platform.base
    try:
        platform.wait_ready()
        rooms = []
        import httpx

        for i in range(args.rooms):
            room = httpx.post(
                f"{base}/api/v1/rooms",
                json={"roomName": f"bench {i}"},
                headers={"X-API-KEY": "bench"},
            ).json()
            rooms.append((room["roomId"], room["speakerUrl"].split("secret=")[1]))
        time.sleep(1.0)  # let the meetings service see the rooms

        async def join_one(client, i):  # type: ignore[no-untyped-def]
            room_id, secret = rooms[i % len(rooms)]
            return await client.post(
                f"{base}/api/v1/rooms/{room_id}/join",
                json={"secret": secret, "participantName": f"user {i}"},
            )

        await closed_loop(join_one, 100, args.concurrency, 200)  # warm up (names 0..99)

        async def measured(client, i):  # type: ignore[no-untyped-def]
            return await join_one(client, i + 100)

        result = await closed_loop(measured, args.joins, args.concurrency, 200)
    finally:
        platform.stop()
    signing = signing_rate()
    print(
        f"meetplane bench/join.py: {args.joins} joins, {args.concurrency} concurrent clients, "
        f"{args.rooms} rooms"
    )
    print(result.line("POST /rooms/{id}/join (gateway)"))
    print(f"{'raw AccessToken.to_jwt() signing':<34} {signing:9.1f} tokens/s")
    print(
        f"ratio joins/signing: {result.rps / signing:.4f}   p99 join latency: "
        f"{result.percentile(99):.1f} ms"
    )
    print(
        json.dumps(
            {
                "joins_per_s": round(result.rps, 1),
                "signing_per_s": round(signing, 1),
                "p99_ms": round(result.percentile(99), 1),
                "errors": result.errors,
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
