"""The `meetplane` command: up, serve, events tail, streams declare, contracts export."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from services.runtime import cli_ops
from services.runtime.launcher import ENTRYPOINTS, SERVICES, run_up
from services.runtime.settings import RuntimeSettings


def _serve(service: str) -> int:
    module_name, func = ENTRYPOINTS[service].split(":")
    getattr(importlib.import_module(module_name), func)()
    return 0


async def _tail(
    settings: RuntimeSettings, subject: str, from_start: bool, count: int | None, idle: float | None
) -> int:
    from nats.js.api import ConsumerConfig, DeliverPolicy

    from services.runtime.nats import connect

    nc = await connect(settings, "meetplane-tail")
    js = nc.jetstream()
    policy = DeliverPolicy.ALL if from_start else DeliverPolicy.NEW
    sub = await js.subscribe(
        subject,
        stream=settings.stream_name,
        ordered_consumer=True,
        config=ConsumerConfig(deliver_policy=policy),
    )
    seen = 0
    try:
        while count is None or seen < count:
            try:
                msg = await sub.next_msg(timeout=idle if idle else 3600 * 24 * 365)
            except TimeoutError:
                break
            print(json.dumps(json.loads(msg.data)), flush=True)
            seen += 1
    finally:
        await sub.unsubscribe()
        await nc.close()
    return 0


async def _declare(settings: RuntimeSettings, replicas: int) -> int:
    from services.runtime.nats import connect, ensure_stream

    nc = await connect(settings, "meetplane-streams")
    try:
        await ensure_stream(nc, replicas, settings.stream_name)
    finally:
        await nc.close()
    print(f"stream {settings.stream_name} declared with {replicas} replica(s)")
    return 0


def _export(out: Path) -> int:
    from services.runtime.schemas import export_schemas

    for path in export_schemas(out):
        print(path)
    return 0


def parser() -> argparse.ArgumentParser:
    """The CLI's argument parser."""
    p = argparse.ArgumentParser(prog="meetplane", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run the whole platform on this machine (embedded default)")
    up.add_argument("--host", default=None, help="gateway host (MEETPLANE_HTTP_HOST)")
    up.add_argument("--port", type=int, default=None, help="gateway port (MEETPLANE_HTTP_PORT)")
    up.add_argument(
        "--services",
        default=None,
        help="comma-separated subset of services to run (default: all)",
    )
    serve = sub.add_parser("serve", help="run one service (Kubernetes)")
    serve.add_argument("service", choices=SERVICES)
    events = sub.add_parser("events", help="integration events on the stream")
    events_sub = events.add_subparsers(dest="events_command", required=True)
    tail = events_sub.add_parser("tail", help="print events as JSON lines")
    tail.add_argument("--subject", default="meetplane.evt.>")
    tail.add_argument("--from-start", action="store_true")
    tail.add_argument("--count", type=int, default=None, help="stop after N events")
    tail.add_argument("--idle-timeout", type=float, default=None, help="stop after N s idle")
    streams = sub.add_parser("streams", help="JetStream stream administration")
    streams_sub = streams.add_subparsers(dest="streams_command", required=True)
    declare = streams_sub.add_parser("declare", help="declare or update the MEETPLANE stream")
    declare.add_argument("--replicas", type=int, default=None)
    contracts = sub.add_parser("contracts", help="wire contracts")
    contracts_sub = contracts.add_subparsers(dest="contracts_command", required=True)
    export = contracts_sub.add_parser("export", help="write JSON schemas and AsyncAPI")
    export.add_argument("--out", type=Path, default=Path("contracts/schemas"))
    cli_ops.add_parsers(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `meetplane` console script."""
    args = parser().parse_args(argv)
    settings = RuntimeSettings()
    if args.command == "serve":
        return _serve(args.service)
    if args.command == "up":
        from services.runtime.logging import configure_logging

        configure_logging(settings.log_format, settings.log_level, "launcher")
        import os

        host = args.host or os.environ.get("MEETPLANE_HTTP_HOST", "127.0.0.1")
        port = args.port or int(os.environ.get("MEETPLANE_HTTP_PORT", "8080"))
        os.environ["MEETPLANE_HTTP_HOST"] = host
        os.environ["MEETPLANE_HTTP_PORT"] = str(port)
        services = tuple(s.strip() for s in args.services.split(",")) if args.services else SERVICES
        unknown = set(services) - set(SERVICES)
        if unknown:
            print(f"unknown service(s): {', '.join(sorted(unknown))}", file=sys.stderr)
            return 2
        return run_up(settings, host, port, services)
    if args.command == "events":
        return asyncio.run(
            _tail(settings, args.subject, args.from_start, args.count, args.idle_timeout)
        )
    if args.command == "streams":
        return asyncio.run(_declare(settings, args.replicas or settings.stream_replicas))
    if args.command == "contracts":
        return _export(args.out)
    if args.command in ("dlq", "views"):
        return asyncio.run(cli_ops.run(settings, args))
    return 2


if __name__ == "__main__":
    sys.exit(main())
