"""NATS connection, the faststream broker, and the stream declaration."""

from __future__ import annotations

import logging
import ssl
from typing import Any

import nats
from faststream.nats import NatsBroker
from nats.js.errors import NotFoundError

from contracts.streams import dlq_stream_config, stream_config
from services.runtime.settings import RuntimeSettings


def _tls(settings: RuntimeSettings) -> ssl.SSLContext | None:
    if not settings.nats_tls_ca and not settings.nats_tls_cert:
        return None
    ctx = ssl.create_default_context(
        cafile=str(settings.nats_tls_ca) if settings.nats_tls_ca else None
    )
    if settings.nats_tls_cert and settings.nats_tls_key:
        ctx.load_cert_chain(str(settings.nats_tls_cert), str(settings.nats_tls_key))
    return ctx


def connection_options(settings: RuntimeSettings, name: str) -> dict[str, Any]:
    """Options shared by the faststream broker and plain nats-py clients.

    Reconnect forever: a NATS restart must not kill a service, it waits and
    carries on (JetStream keeps what was published).
    """
    options: dict[str, Any] = {
        "servers": [s.strip() for s in settings.effective_nats_url().split(",")],
        "name": name,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": 1,
        "connect_timeout": 5,
    }
    if settings.nats_user:
        options["user"] = settings.nats_user
        options["password"] = settings.nats_password
    if settings.nats_token:
        options["token"] = settings.nats_token
    if settings.nats_creds:
        options["user_credentials"] = str(settings.nats_creds)
    tls = _tls(settings)
    if tls is not None:
        options["tls"] = tls
    return options


def make_broker(settings: RuntimeSettings, name: str) -> NatsBroker:
    """The faststream broker of one service process."""
    # Per-message "Received/Processed" lines go to DEBUG; our handlers log what matters.
    return NatsBroker(
        **connection_options(settings, name), graceful_timeout=10, log_level=logging.DEBUG
    )


async def connect(settings: RuntimeSettings, name: str) -> nats.NATS:
    """A plain nats-py connection (stream admin, CLI tail)."""
    return await nats.connect(**connection_options(settings, name))


def dlq_stream_name(stream: str) -> str:
    """The dead-letter stream that belongs to an event stream (`MEETPLANE` -> `MEETPLANE_DLQ`)."""
    return f"{stream}_DLQ"


async def ensure_stream(nc: nats.NATS, replicas: int = 1, name: str = "MEETPLANE") -> None:
    """Declare the event stream and its dead-letter stream, or bring their settings up to date."""
    js = nc.jetstream()
    for stream, config in (
        (name, stream_config(replicas=replicas, name=name)),
        (dlq_stream_name(name), dlq_stream_config(replicas=replicas, name=dlq_stream_name(name))),
    ):
        try:
            await js.stream_info(stream)
        except NotFoundError:
            await js.add_stream(config)
            continue
        await js.update_stream(config)


async def start_broker(broker: NatsBroker, timeout: float = 120.0) -> None:
    """Start a broker, waiting out a JetStream that is electing leaders or catching up.

    Binding durable consumers asks JetStream for consumer info; while a cluster
    recovers a node those calls time out.  Subscribers already started are kept
    (faststream skips them on the next try), so retrying is safe.
    """
    import asyncio

    from nats.errors import NoRespondersError
    from nats.errors import TimeoutError as NatsTimeoutError
    from nats.js.errors import ServiceUnavailableError

    from services.runtime.logging import get_logger

    log = get_logger("meetplane.nats")
    deadline = asyncio.get_running_loop().time() + timeout
    delay = 0.5
    while True:
        try:
            await broker.start()
            return
        except (NatsTimeoutError, TimeoutError, NoRespondersError, ServiceUnavailableError) as exc:
            if asyncio.get_running_loop().time() > deadline:
                raise
            log.warning("nats.start_retry", error=type(exc).__name__, retry_in=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


async def publish_events(
    broker: NatsBroker, envelopes: list[Any], stream: str, timeout: float = 10.0
) -> list[Any]:
    """Publish integration events to JetStream pipelined, and wait for every ack.

    Each message carries `Nats-Msg-Id` = its event id, so re-publishing a batch
    after a crash is deduplicated by the stream.  Returns the PubAcks (raises if
    any publish failed, so the caller does not record progress).
    """
    import asyncio

    from contracts.events import subject_of

    connection = broker._connection
    assert connection is not None, "broker not connected"
    # No per-message `wait_stall`: it wraps every acquire in a task (2.5x slower);
    # the wait for all acks below is bounded instead.
    js = connection.jetstream()
    futures = []
    for envelope in envelopes:
        futures.append(
            await js.publish_async(
                subject_of(envelope.type),
                envelope.model_dump_json().encode(),
                stream=stream,
                headers={"Nats-Msg-Id": str(envelope.id)},
            )
        )
    return list(await asyncio.wait_for(asyncio.gather(*futures), timeout))
