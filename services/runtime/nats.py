"""NATS connection, the faststream broker, and the stream declaration."""

from __future__ import annotations

import asyncio
import logging
import ssl
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import nats
from faststream.nats import NatsBroker
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from contracts.streams import (
    CONFIG_BUCKET,
    CONFIG_BUCKET_HISTORY,
    dlq_stream_config,
    stream_config,
)
from services.runtime.settings import RuntimeSettings
from services.runtime.telemetry import broker_middlewares


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
        "inbox_prefix": settings.nats_inbox_prefix,
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
    from faststream.security import BaseSecurity, SASLPlaintext

    options = connection_options(settings, name)
    # faststream takes a user, a password and TLS as a `security` object, not as keywords.
    user, password, tls = (
        options.pop("user", None),
        options.pop("password", None),
        options.pop("tls", None),
    )
    security: BaseSecurity | None = None
    if user is not None:
        security = SASLPlaintext(username=user, password=password or "", ssl_context=tls)
    elif tls is not None:
        security = BaseSecurity(ssl_context=tls)
    # Per-message "Received/Processed" lines go to DEBUG; our handlers log what matters.
    # faststream's middlewares: NATS message metrics, and with tracing on the trace
    # context in the headers of every command and reply.
    return NatsBroker(
        **options,
        security=security,
        graceful_timeout=3,
        log_level=logging.DEBUG,
        middlewares=broker_middlewares(name),
    )


async def connect(settings: RuntimeSettings, name: str) -> nats.NATS:
    """A plain nats-py connection (stream admin, CLI tail)."""
    return await nats.connect(**connection_options(settings, name))


class NatsUnreachable(Exception):
    """No NATS server answered at the configured address (a one-line message)."""


async def connect_once(settings: RuntimeSettings, name: str, timeout: float = 5.0) -> nats.NATS:
    """A nats-py connection for a command-line tool: fail within `timeout`, quietly.

    `connect` retries its first connection forever and prints a traceback for
    every refusal; a tool should say once what it could not reach.  Once
    connected, it reconnects like the services do.
    """
    last: list[BaseException] = []

    async def quiet(exc: BaseException) -> None:
        last[:] = [exc]

    options = connection_options(settings, name)
    try:
        return await asyncio.wait_for(nats.connect(**options, error_cb=quiet), timeout)
    except (TimeoutError, OSError, nats.errors.Error) as exc:
        cause = last[0] if last else exc
        reason = str(cause) or type(cause).__name__
        raise NatsUnreachable(
            f"cannot reach NATS at {', '.join(options['servers'])} ({reason}); "
            "is `meetplane up` running? (MEETPLANE_NATS_URL / MEETPLANE_NATS_PORT)"
        ) from None


def dlq_stream_name(stream: str) -> str:
    """The dead-letter stream that belongs to an event stream (`MEETPLANE` -> `MEETPLANE_DLQ`)."""
    return f"{stream}_DLQ"


async def ensure_stream(nc: nats.NATS, replicas: int = 1, name: str = "MEETPLANE") -> None:
    """Declare the event stream, its dead-letter stream and the config bucket, or bring
    their settings up to date.

    All get `replicas` replicas: a bucket left at one replica on a three-node cluster
    would lose the webhook configuration with a single node.
    """
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
    await ensure_config_bucket(nc, replicas)


async def ensure_config_bucket(nc: nats.NATS, replicas: int) -> None:
    """Create the configuration KV bucket, or set its replicas to `replicas`."""
    from dataclasses import replace

    from nats.js.errors import BucketNotFoundError

    js = nc.jetstream()
    try:
        await js.key_value(CONFIG_BUCKET)
    except BucketNotFoundError:
        await js.create_key_value(
            bucket=CONFIG_BUCKET, history=CONFIG_BUCKET_HISTORY, replicas=replicas
        )
        return
    info = await js.stream_info(f"KV_{CONFIG_BUCKET}")
    if info.config.num_replicas != replicas:
        await js.update_stream(replace(info.config, num_replicas=replicas))


async def wait_for_stream(nc: nats.NATS, stream: str, log_every: float = 10.0) -> None:
    """Return once `stream` exists, however long that takes.

    The stream is declared by someone else (the launcher, the Kubernetes Job, an
    operator); a service that starts first waits for it instead of crash-looping.
    """
    import asyncio

    from nats.errors import NoRespondersError
    from nats.errors import TimeoutError as NatsTimeoutError
    from nats.js.errors import ServiceUnavailableError

    from services.runtime.logging import get_logger

    log = get_logger("meetplane.nats")
    js = nc.jetstream()
    loop = asyncio.get_running_loop()
    waited_since = loop.time()
    logged_at = -log_every
    delay = 0.2
    while True:
        try:
            await js.stream_info(stream)
            waited = loop.time() - waited_since
            if waited > 1:
                log.info("nats.stream_found", stream=stream, waited=round(waited))
            return
        except (
            NotFoundError,
            NatsTimeoutError,
            TimeoutError,
            NoRespondersError,
            ServiceUnavailableError,
        ) as exc:
            if loop.time() - logged_at >= log_every:
                logged_at = loop.time()
                log.warning("nats.waiting_for_stream", stream=stream, error=type(exc).__name__)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 2.0)


async def start_broker(
    broker: NatsBroker, timeout: float = 120.0, stream: str | None = None
) -> None:
    """Start a broker, waiting out a JetStream that is electing leaders or catching up.

    With `stream`, first wait (without limit) until that stream exists: its
    subscribers bind to it and would fail.  Binding durable consumers asks
    JetStream for consumer info; while a cluster recovers a node those calls time
    out.  Subscribers already started are kept (faststream skips them on the next
    try), so retrying is safe.
    """
    import asyncio

    from nats.errors import NoRespondersError
    from nats.errors import TimeoutError as NatsTimeoutError
    from nats.js.errors import ServiceUnavailableError

    from services.runtime.logging import get_logger

    log = get_logger("meetplane.nats")
    if stream is not None:
        await wait_for_stream(await broker.connect(), stream)
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


# One JetStream context per connection for `publish_async`: a context subscribes its
# own reply inbox on its first asynchronous publish and never unsubscribes it, so a
# context per batch left one more subscription on the connection (and the server)
# for every batch the outbox ever published.
_PUBLISHING: weakref.WeakKeyDictionary[nats.NATS, JetStreamContext] = weakref.WeakKeyDictionary()


def publishing_context(connection: nats.NATS) -> JetStreamContext:
    """The connection's JetStream context for asynchronous publishes (made once)."""
    js = _PUBLISHING.get(connection)
    if js is None:
        js = _PUBLISHING[connection] = connection.jetstream()
    return js


async def publish_events(
    broker: NatsBroker,
    envelopes: list[Any],
    stream: str,
    timeout: float = 10.0,
    headers: Sequence[Mapping[str, str]] | None = None,
) -> list[Any]:
    """Publish integration events to JetStream pipelined, and wait for every ack.

    Each message carries `Nats-Msg-Id` = its event id, so re-publishing a batch
    after a crash is deduplicated by the stream, plus its entry of `headers`
    (the trace context, see `services.runtime.telemetry`).  Returns the PubAcks
    (raises if any publish failed, so the caller does not record progress).
    """
    import asyncio

    from contracts.events import subject_of

    connection = broker._connection
    assert connection is not None, "broker not connected"
    # No per-message `wait_stall`: it wraps every acquire in a task (2.5x slower);
    # the wait for all acks below is bounded instead.
    js = publishing_context(connection)
    futures = []
    for index, envelope in enumerate(envelopes):
        extra = headers[index] if headers is not None else {}
        futures.append(
            await js.publish_async(
                subject_of(envelope.type),
                # No `"traceparent": null` when unset: the bytes stay as before.
                envelope.model_dump_json(
                    exclude=None if envelope.traceparent else {"traceparent"}
                ).encode(),
                stream=stream,
                headers={**extra, "Nats-Msg-Id": str(envelope.id)},
            )
        )
    async with asyncio.timeout(timeout):  # no task started per batch, unlike wait_for
        return list(await asyncio.gather(*futures))
