"""`meetplane status`: what an operator checks first, for a running platform.

For each service: the replicas that answer its ping (distinct instances seen
over a few pings), its consumer's lag and parked messages (from JetStream) and
its outbox lag (from the service's `/metrics`); plus the size of the event
stream and of its dead-letter stream.  Metrics URLs come from the `up` running
on the data dir, or from `--metrics service=url` (a Kubernetes port-forward).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
from nats.js.errors import NotFoundError
from prometheus_client.parser import text_string_to_metric_families

from services.runtime.datadir import run_info_path
from services.runtime.settings import RuntimeSettings

PINGS = 8  # a queue group hands each ping to one replica: several pings see several
SERVICE_NAMES = ("rooms", "meetings", "recordings", "janitor", "identity")


@dataclass
class ServiceStatus:
    """One service's line of `meetplane status`."""

    service: str
    replicas: int
    consumer: str
    consumer_lag: int | None
    parked: int
    outbox_lag: int | None


def add_parser(sub: Any) -> None:
    """Add `status` to the CLI's parser."""
    status = sub.add_parser("status", help="replicas, lags, dead letters and stream size")
    status.add_argument(
        "--metrics",
        action="append",
        default=[],
        metavar="SERVICE=URL",
        help="where a service's /metrics is (default: from the `up` on the data dir)",
    )
    status.add_argument("--json", action="store_true", help="one JSON document")


def metrics_urls(data_dir: Path, given: list[str]) -> dict[str, str]:
    """The `up`'s metrics URLs (if one runs on `data_dir`), overridden by `given`."""
    urls: dict[str, str] = {}
    with contextlib.suppress(OSError, ValueError):
        urls.update(json.loads(run_info_path(data_dir).read_text()).get("metrics", {}))
    for item in given:
        service, _, url = item.partition("=")
        urls[service.strip()] = url.strip()
    return urls


async def _sample(client: httpx.AsyncClient, url: str | None, name: str) -> int | None:
    """The value of a single-sample metric at `url`, or None if unreachable or absent."""
    if not url:
        return None
    try:
        response = await client.get(url)
    except httpx.HTTPError:
        return None
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name == name:
                return int(sample.value)
    return None


async def collect(settings: RuntimeSettings, urls: dict[str, str]) -> dict[str, Any]:
    """Everything `status` prints, as plain data."""
    from services.runtime.dlq import DeadLetters
    from services.runtime.nats import connect_once, dlq_stream_name, make_broker
    from services.runtime.rpc import request

    nc = await connect_once(settings, "meetplane-status")
    broker = make_broker(settings, "meetplane-status")
    await broker.connect()
    try:
        js = nc.jetstream()
        stream = settings.stream_name
        info = await js.stream_info(stream)
        try:
            dlq = (await js.stream_info(dlq_stream_name(stream))).state.messages
        except NotFoundError:
            dlq = 0
        dead = DeadLetters(nc, dlq_stream_name(stream))
        services = []
        async with httpx.AsyncClient(timeout=2.0) as client:
            for service in SERVICE_NAMES:
                pongs = await asyncio.gather(
                    *(request(broker, service, "ping", timeout=3.0) for _ in range(PINGS))
                )
                instances = {(p.result or {}).get("instance") for p in pongs if p.ok}
                consumer = f"{service}-events"
                try:
                    ci = await js.consumer_info(stream, consumer)
                    lag: int | None = int(ci.num_pending or 0) + int(ci.num_ack_pending or 0)
                except NotFoundError:
                    lag = None
                services.append(
                    ServiceStatus(
                        service=service,
                        replicas=len(instances),
                        consumer=consumer,
                        consumer_lag=lag,
                        parked=await dead.count(consumer),
                        outbox_lag=await _sample(client, urls.get(service), "meetplane_outbox_lag"),
                    )
                )
        return {
            "stream": {
                "name": stream,
                "messages": info.state.messages,
                "bytes": info.state.bytes,
                "dead_letters": dlq,
            },
            "services": [asdict(s) for s in services],
        }
    finally:
        await broker.stop()
        await nc.close()


def _text(value: int | None) -> str:
    return "-" if value is None else str(value)


def render(status: dict[str, Any]) -> str:
    """The human-readable table."""
    stream = status["stream"]
    lines = [
        f"stream {stream['name']}: {stream['messages']} messages, {stream['bytes']} bytes; "
        f"dead letters: {stream['dead_letters']}",
        f"{'service':<12}{'replicas':>9}{'outbox lag':>12}  {'consumer':<20}"
        f"{'consumer lag':>13}{'parked':>8}",
    ]
    for s in status["services"]:
        lines.append(
            f"{s['service']:<12}{s['replicas']:>9}{_text(s['outbox_lag']):>12}  "
            f"{s['consumer']:<20}{_text(s['consumer_lag']):>13}{s['parked']:>8}"
        )
    return "\n".join(lines)


async def run(settings: RuntimeSettings, args: argparse.Namespace) -> int:
    """Print the status; exit 0."""
    status = await collect(settings, metrics_urls(Path(settings.data_dir), args.metrics))
    print(json.dumps(status, indent=2) if args.json else render(status))
    return 0
