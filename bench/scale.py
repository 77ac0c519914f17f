"""Benchmark: room creates per second with 1 vs 2 replicas of rooms + gateway on PostgreSQL.

Same run, same load (closed loop, N concurrent clients spread over the gateways).
On 2 cores expect a modest gain at best: the point is that adding replicas
neither drops nor breaks anything.

    python bench/scale.py [--requests 1500] [--concurrency 50]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._harness import LoadResult, closed_loop
from tests.support.cluster import Cluster
from tests.support.infra import drop_schemas, postgres_dsn, schema_prefix


async def run(replicas: int, requests: int, concurrency: int, dsn: str) -> LoadResult:
    root = Path(tempfile.mkdtemp(prefix=f"meetplane-scale-{replicas}-"))
    prefix = schema_prefix()
    cluster = await asyncio.to_thread(
        Cluster, root, dsn, prefix, ["rooms"], replicas, 1, {"MEETPLANE_LOG_LEVEL": "WARNING"}
    )
    try:
        await asyncio.to_thread(cluster.wait_ready)
        gateways = cluster.gateways
        headers = {"X-API-KEY": cluster.api_key}

        async def create(client, i):  # type: ignore[no-untyped-def]
            base = gateways[i % len(gateways)]
            return await client.post(
                f"{base}/api/v1/rooms", json={"roomName": f"s{i}"}, headers=headers
            )

        await closed_loop(create, 100, concurrency, 201)  # warm up
        return await closed_loop(create, requests, concurrency, 201)
    finally:
        cluster.stop()
        drop_schemas(dsn, prefix)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    dsn = postgres_dsn()
    if dsn is None:
        raise SystemExit("bench/scale.py needs PostgreSQL (MEETPLANE_TEST_POSTGRES_DSN)")
    one = await run(1, args.requests, args.concurrency, dsn)
    two = await run(2, args.requests, args.concurrency, dsn)
    print(
        f"meetplane bench/scale.py: POST /api/v1/rooms on PostgreSQL, {args.requests} requests, "
        f"{args.concurrency} concurrent clients"
    )
    print(one.line("1 x (rooms + gateway)"))
    print(two.line("2 x (rooms + gateway)"))
    print(f"ratio 2/1 throughput: {two.rps / one.rps:.2f}   errors: {one.errors + two.errors}")


if __name__ == "__main__":
    asyncio.run(main())
