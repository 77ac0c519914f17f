"""The `meetplane` command: up, serve, status, events tail, streams declare, contracts export."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import sys
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any, NoReturn

from services.runtime import cli_ops, cli_status
from services.runtime.datadir import running_nats_url
from services.runtime.launcher import ENTRYPOINTS, SERVICES, admin_credentials, run_up
from services.runtime.settings import RuntimeSettings


def tool_settings() -> RuntimeSettings:
    """Settings of a tool talking to the platform: the same as `up`'s.

    Without `MEETPLANE_NATS_URL` or `MEETPLANE_NATS_PORT`, a tool joins the NATS of
    the `up` running on `MEETPLANE_DATA_DIR` (it wrote its URL there), else the
    embedded default port.
    """
    settings = RuntimeSettings()
    embedded = settings.nats_url is None
    if embedded and "nats_port" not in settings.model_fields_set:
        url = running_nats_url(settings.data_dir)
        if url:
            settings = settings.model_copy(update={"nats_url": url})
    if embedded and not settings.nats_user:
        # The embedded NATS refuses anonymous clients: use the data dir's admin user.
        settings = admin_credentials(settings)
    return settings


def _nats_tool(command: str, run: Coroutine[Any, Any, int]) -> int:
    """Run a NATS-using command; an unreachable NATS or a NATS error is one line, exit 1."""
    from nats.errors import Error as NatsError

    from services.runtime.nats import NatsUnreachable

    try:
        return asyncio.run(run)
    except NatsUnreachable as exc:
        print(f"meetplane {command}: {exc}", file=sys.stderr)
    except NatsError as exc:
        print(f"meetplane {command}: NATS error: {exc or type(exc).__name__}", file=sys.stderr)
    except KeyboardInterrupt:
        return 130
    return 1


def _exit_now(code: int) -> NoReturn:
    """Leave at once after a clean stop (stores closed, broker drained, children gone).

    The interpreter's teardown collects the whole heap and can take seconds on a
    busy machine; `up`'s Ctrl-C must not wait for it.  Nothing of ours relies on
    `atexit`: what must be flushed or closed is closed before this.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _serve(service: str) -> int:
    from services.runtime.secrets import DevSecretsRefused, check_dev_secrets

    try:
        check_dev_secrets(os.environ, service)
    except DevSecretsRefused as exc:
        print(f"meetplane serve: {exc}", file=sys.stderr, flush=True)
        return 2
    module_name, func = ENTRYPOINTS[service].split(":")
    getattr(importlib.import_module(module_name), func)()
    _exit_now(0)


async def _tail(
    settings: RuntimeSettings, subject: str, from_start: bool, count: int | None, idle: float | None
) -> int:
    from nats.js.api import ConsumerConfig, DeliverPolicy

    from services.runtime.nats import connect_once

    nc = await connect_once(settings, "meetplane-tail")
    try:
        policy = DeliverPolicy.ALL if from_start else DeliverPolicy.NEW
        sub = await nc.jetstream().subscribe(
            subject,
            stream=settings.stream_name,
            ordered_consumer=True,
            config=ConsumerConfig(deliver_policy=policy),
        )
        seen = 0
        while count is None or seen < count:
            try:
                msg = await sub.next_msg(timeout=idle if idle else 3600 * 24 * 365)
            except TimeoutError:
                break
            print(json.dumps(json.loads(msg.data)), flush=True)
            seen += 1
    finally:
        await nc.close()
    return 0


async def _declare(settings: RuntimeSettings, replicas: int) -> int:
    from services.runtime.nats import connect_once, ensure_stream

    nc = await connect_once(settings, "meetplane-streams")
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


def package_version() -> str:
    """The installed meetplane distribution's version (pyproject.toml's)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("meetplane")
    except PackageNotFoundError:  # pragma: no cover - running from a bare source tree
        return "unknown"


def parser() -> argparse.ArgumentParser:
    """The CLI's argument parser."""
    p = argparse.ArgumentParser(prog="meetplane", description=__doc__)
    p.add_argument("--version", action="version", version=f"meetplane {package_version()}")
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
    cli_status.add_parser(sub)
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

        host = args.host or os.environ.get("MEETPLANE_HTTP_HOST", "127.0.0.1")
        port = args.port or int(os.environ.get("MEETPLANE_HTTP_PORT", "8080"))
        os.environ["MEETPLANE_HTTP_HOST"] = host
        os.environ["MEETPLANE_HTTP_PORT"] = str(port)
        services = tuple(s.strip() for s in args.services.split(",")) if args.services else SERVICES
        unknown = set(services) - set(SERVICES)
        if unknown:
            print(f"unknown service(s): {', '.join(sorted(unknown))}", file=sys.stderr)
            return 2
        _exit_now(run_up(settings, host, port, services))
    if args.command == "events":
        return _nats_tool(
            "events tail",
            _tail(tool_settings(), args.subject, args.from_start, args.count, args.idle_timeout),
        )
    if args.command == "streams":
        settings = tool_settings()
        return _nats_tool(
            "streams declare", _declare(settings, args.replicas or settings.stream_replicas)
        )
    if args.command == "contracts":
        return _export(args.out)
    if args.command == "status":
        return _nats_tool("status", cli_status.run(tool_settings(), args))
    if args.command in ("dlq", "views"):
        return _nats_tool(args.command, cli_ops.run(tool_settings(), args))
    return 2


if __name__ == "__main__":
    sys.exit(main())
