"""`meetplane dlq ...` and `meetplane views rebuild ...`: operator commands over NATS.

`dlq list` and `dlq show` read the dead-letter stream directly; `dlq retry`,
`dlq drop` and `views rebuild` are commands to the service that owns the
consumer or view (it runs its own handler, see `services/runtime/operations.py`).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

from services.runtime.settings import RuntimeSettings


def add_parsers(sub: Any) -> None:
    """Add the `dlq` and `views` sub-commands to the CLI's parser."""
    dlq = sub.add_parser("dlq", help="messages consumers parked on the dead-letter stream")
    dlq_sub = dlq.add_subparsers(dest="dlq_command", required=True)
    listing = dlq_sub.add_parser("list", help="parked messages, oldest first")
    listing.add_argument("--consumer", default=None)
    listing.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    show = dlq_sub.add_parser("show", help="one parked message with its body")
    show.add_argument("seq", type=int)
    for verb, text in (
        ("retry", "apply parked messages again (with the earlier ones of their aggregate)"),
        ("drop", "remove parked messages without applying them"),
    ):
        parser = dlq_sub.add_parser(verb, help=text)
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("seq", type=int, nargs="?", help="dead-letter sequence")
        target.add_argument("--consumer", help="every parked message of this consumer")
    views = sub.add_parser("views", help="read models")
    views_sub = views.add_subparsers(dest="views_command", required=True)
    rebuild = views_sub.add_parser("rebuild", help="replay a service's log into its read models")
    rebuild.add_argument("service")
    rebuild.add_argument("--view", default=None, help="one view (default: all of the service)")


async def run(settings: RuntimeSettings, args: argparse.Namespace) -> int:
    """Run a `dlq` or `views` command; prints JSON or a table, returns the exit code."""
    from services.runtime.dlq import DeadLetters
    from services.runtime.nats import connect, dlq_stream_name

    nc = await connect(settings, "meetplane-cli")
    try:
        dead = DeadLetters(nc, dlq_stream_name(settings.stream_name))
        if args.command == "views":
            return _print_reply(
                await _request(nc, args.service, "rebuild_views", {"view": args.view}, 600.0)
            )
        if args.dlq_command == "list":
            return _print_list([p.summary() for p in await dead.list(args.consumer)], args.json)
        if args.dlq_command == "show":
            parked = await dead.get(args.seq)
            if parked is None:
                print(f"no parked message {args.seq}", file=sys.stderr)
                return 1
            body: Any
            try:
                body = json.loads(parked.data)
            except ValueError:
                body = parked.data.decode(errors="replace")
            print(json.dumps({**parked.summary(), "body": body}, indent=2))
            return 0
        if args.seq is not None:
            parked = await dead.get(args.seq)
            if parked is None:
                print(f"no parked message {args.seq}", file=sys.stderr)
                return 1
            service, consumer = parked.service, parked.consumer
        else:
            consumer = args.consumer
            found = await dead.list(consumer, limit=1)
            if not found:
                print(f"nothing parked for {consumer}")
                return 0
            service = found[0].service
        payload = {"consumer": consumer, "seq": args.seq}
        return _print_reply(await _request(nc, service, f"dlq_{args.dlq_command}", payload, 60.0))
    finally:
        await nc.close()


async def _request(
    nc: Any, service: str, verb: str, payload: dict[str, Any], timeout: float
) -> Any:
    from contracts.commands import Reply, command_subject

    message = await nc.request(
        command_subject(service, verb), json.dumps(payload).encode(), timeout=timeout
    )
    return Reply.model_validate_json(message.data)


def _print_reply(reply: Any) -> int:
    if reply.ok:
        print(json.dumps(reply.result, indent=2))
        return 0
    print(f"{reply.error.error}: {reply.error.message}", file=sys.stderr)
    return 1


def _print_list(rows: list[dict[str, Any]], as_json: bool) -> int:
    if as_json:
        for row in rows:
            print(json.dumps(row))
        return 0
    if not rows:
        print("nothing parked")
        return 0
    header = ("seq", "parked at (UTC)", "consumer", "reason", "subject id")
    print(f"{header[0]:>6}  {header[1]:<19}  {header[2]:<22} {header[3]:<7} {header[4]:<24} error")
    for row in rows:
        when = datetime.fromtimestamp(row["parkedAt"], UTC).strftime("%Y-%m-%d %H:%M:%S")
        print(
            f"{row['seq']:>6}  {when:<19}  {row['consumer']:<22} {row['reason']:<7} "
            f"{row['subjectId'][:24]:<24} {row['error'][:80]}"
        )
    return 0
