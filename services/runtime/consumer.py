"""Durable, batched, ordered JetStream consumers with a dead-letter stream.

How a consumer works, in one place:

- **One active replica.**  Replicas of a service share a lease per consumer
  (`services.runtime.leader`); only its holder fetches.  On taking the lease it
  points the JetStream consumer at the position the service recorded in its
  own store, so the store (not JetStream's cursor) says what was processed.
- **Batches, in order.**  The leader keeps a pull request open on the
  JetStream consumer (`services.runtime.pull`), takes what has been delivered
  (up to `CONSUMER_BATCH`), skips what its position says is done (a redelivery), and
  hands the rest, in stream order, to the service's `process(batch, position)`,
  which writes the effects and the position of the batch's last message in one
  transaction.  One ack (policy "all") per batch.
- **A trickle is batched too.**  A take that found fewer events than a batch,
  at the stream's head, waits up to `linger` (`MEETPLANE_CONSUMER_LINGER_MS`,
  50 ms) for more before handling them: at one event every few milliseconds (one client creating
  rooms) a batch's fixed cost (wake-up, transaction, ack, followers) was most
  of an event's cost, now shared by several.  Under load batches fill and
  nobody waits.  `caught_up()` cuts a linger short, so a caller reading its own
  write (a join right after a room was created) does not wait for it.
- **No write for nothing.**  A batch that meant nothing to the service
  (`process` returns False: the janitor reading a room created without an
  auto-deletion date) writes nothing; its position is recorded later, with one
  write, once the stream is quiet for `flush_delay` or the first unrecorded
  batch is `flush_age` old.  Safe because the position in the service's store,
  not JetStream's cursor, says where a consumer resumes: a no-op event whose
  position was not recorded is read again as a no-op.
- **Nothing wedges.**  If a batch fails, its messages are handled one at a time:
  a failing message is retried with backoff (`services.runtime.retry.Patience`:
  a few attempts for a defect, longer while the error is an infrastructure
  fault), then parked on the dead-letter stream with the error, the consumer and
  the attempts (`services.runtime.dlq`), and the consumer moves on.
- **Per-aggregate order.**  Later events of an aggregate that has a parked
  message are parked behind it, not applied out of order; other aggregates go on.
  `meetplane dlq retry` re-runs the service's own `process` on the parked
  messages of an aggregate, in order, and releases it when none is left.
- **Read-your-writes.**  `caught_up()` waits until every event on the stream
  when it was called (of the consumer's subjects) has been processed: a command
  that depends on another service's events calls it before reading its state.
  On the leading replica it ends a linger at once; a replica that does not lead
  waits for the leader's recorded position, so at most `linger` longer.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eventsourcing.persistence import IntegrityError, Tracking
from faststream.nats import NatsBroker
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from prometheus_client import Counter, Gauge, Histogram
from pydantic import ValidationError

from contracts.events import EventEnvelope
from contracts.streams import (
    CONSUMER_ACK_WAIT_SECONDS,
    CONSUMER_BATCH,
    CONSUMER_HEARTBEAT_SECONDS,
)
from services.runtime.dlq import DeadLetters, Parked, aggregate_token, changed_subject
from services.runtime.leader import Leadership, Lease
from services.runtime.logging import get_logger
from services.runtime.nats import dlq_stream_name
from services.runtime.pull import PullBroken, PullStream
from services.runtime.retry import Patience, retry_async, retry_forever
from services.runtime.telemetry import TRACEPARENT, consume_spans, with_traceparent

log = get_logger("meetplane.consumer")

EVENTS = Counter(
    "meetplane_consumer_events_total",
    "Integration events a consumer handled, by outcome",
    ["consumer", "outcome"],
)
BATCH_SECONDS = Histogram(
    "meetplane_consumer_batch_seconds",
    "Time to process one fetched batch",
    ["consumer"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
)
POSITION = Gauge(
    "meetplane_consumer_position", "Last stream sequence a consumer processed", ["consumer"]
)
LAG = Gauge(
    "meetplane_consumer_lag",
    "Events of a consumer's subjects on the stream after its position (on the leading replica)",
    ["consumer"],
)
PARKED = Gauge(
    "meetplane_consumer_parked_messages",
    "Messages of a consumer waiting on the dead-letter stream",
    ["consumer"],
)


@dataclass(frozen=True)
class Consumed:
    """A consumed integration event with its tracking position (consumer name, stream seq)."""

    envelope: EventEnvelope
    tracking: Tracking


# `process(batch, position)`: apply the batch in order and record `position` with the
# effects, atomically.  `batch` may be empty: then only the position moves, always.
# It may return False for a non-empty batch that meant nothing to it (it wrote
# nothing, the position included): the consumer records the position later.
Process = Callable[[Sequence[Consumed], Tracking], Awaitable[bool | None]]
# The last stream sequence the service recorded for this consumer (sync: runs in a thread).
Position = Callable[[], int | None]


@dataclass
class _Item:
    """A fetched message on its way through a batch."""

    msg: Msg
    seq: int
    subject_id: str
    consumed: Consumed | None
    error: str = ""

    @property
    def token(self) -> str:
        return aggregate_token(self.subject_id)

    @property
    def trace_headers(self) -> Mapping[str, str] | None:
        """The headers' trace context, else the envelope's `traceparent` (durable)."""
        envelope = self.consumed.envelope if self.consumed else None
        return with_traceparent(self.msg.headers, envelope.traceparent if envelope else None)


def _span_of(item: _Item) -> tuple[Mapping[str, str] | None, dict[str, Any]]:
    """What a message's trace span needs: its trace context and attributes."""
    return item.trace_headers, {
        "messaging.destination.name": item.msg.subject,
        "messaging.message.id": str(item.consumed.envelope.id) if item.consumed else "",
        "meetplane.stream_seq": item.seq,
    }


class DurableConsumer:
    """One durable consumer of the event stream for one service."""

    def __init__(
        self,
        broker: NatsBroker,
        *,
        service: str,
        name: str,
        subjects: Sequence[str],
        process: Process,
        position: Position,
        lease: Lease | None = None,
        stream: str = "MEETPLANE",
        batch: int = CONSUMER_BATCH,
        patience: Patience | None = None,
        fetch_timeout: float = 1.0,
        flush_delay: float = 0.05,
        flush_age: float = 0.5,
        linger: float = 0.0,
    ) -> None:
        self.broker = broker
        self.service = service
        self.name = name
        self.subjects = list(subjects)
        self._process = process
        self._position = position
        self.leadership = Leadership(f"consumer {name}", lease)
        self.stream = stream
        self.batch = batch
        self.patience = patience or Patience()
        self.fetch_timeout = fetch_timeout
        self.flush_delay = flush_delay
        self.flush_age = flush_age
        self.linger = linger
        self.position = 0  # valid while leading
        self._recorded = 0  # the position the store holds, while leading (<= position)
        self._unrecorded_since: float | None = None  # when `position` first passed it
        self._held: set[str] = set()
        self._held_dirty = True
        self._pull: PullStream | None = None
        self._stopping = False
        self._progress = asyncio.Event()
        # Callers of `caught_up` waiting for the stream's head (see `_stream_head`).
        self._head_waiters: list[asyncio.Future[int]] = []
        self._head_reading = False
        self._head_task: asyncio.Task[None] | None = None
        self.dead: DeadLetters | None = None

    # ---- lifecycle -------------------------------------------------------------------

    def _connection(self) -> Client:
        connection = self.broker._connection
        assert connection is not None, "broker not connected"
        return connection

    def _js(self) -> JetStreamContext:
        return self._connection().jetstream()

    async def run(self) -> None:
        """Consume until `stop()`; every error is logged and retried with backoff."""
        connection = self._connection()
        self.dead = DeadLetters(connection, dlq_stream_name(self.stream))

        async def _changed(_: Msg) -> None:
            self._held_dirty = True

        notices = await connection.subscribe(changed_subject(self.name), cb=_changed)
        try:
            await retry_forever(self._loop, self._log_retry)
            with contextlib.suppress(Exception):  # stopping: a restart re-reads the no-ops
                await self._record()
        finally:
            with contextlib.suppress(Exception):
                await notices.unsubscribe()
            await self._unbind()
            await self.leadership.release()

    def stop(self) -> None:
        """Finish the current batch, then return from `run()` (a waiting take ends now)."""
        self._stopping = True
        if self._pull is not None:
            self._pull.interrupt()

    def _log_retry(self, error: BaseException, attempt: int, delay: float) -> None:
        log.warning(
            "consumer.loop_failed",
            consumer=self.name,
            error=repr(error),
            attempt=attempt,
            retry_in=round(delay, 2),
        )
        self._pull = None  # rebind from the recorded position

    async def _loop(self) -> None:
        while not self._stopping:
            if not await self.leadership.leads():
                await self._unbind()
                await asyncio.sleep(self.fetch_timeout)
                continue
            if self._pull is None:
                await self._bind()
            if self._held_dirty:
                await self._refresh_held()
            assert self._pull is not None
            waiting = self._unrecorded_since is not None
            try:
                msgs = await self._pull.take(
                    self.batch,
                    timeout=self.flush_delay if waiting else self.fetch_timeout,
                    linger=self.linger,
                )
            except PullBroken as exc:
                log.warning("consumer.rebind", consumer=self.name, reason=str(exc))
                await self._unbind()
                continue
            if msgs:
                await self._handle(msgs)
                LAG.labels(self.name).set(msgs[-1].metadata.num_pending)
                since = self._unrecorded_since
                if since is not None and time.monotonic() - since >= self.flush_age:
                    await self._record()
            else:
                LAG.labels(self.name).set(0)  # nothing left to take
                await self._record()  # quiet: record what the no-op batches passed

    async def _bind(self) -> None:
        """Point the JetStream consumer at our recorded position and subscribe to it."""
        recorded = await asyncio.to_thread(self._position)
        self.position = self._recorded = recorded or 0
        POSITION.labels(self.name).set(self.position)
        js = self._js()
        config = ConsumerConfig(
            durable_name=self.name,
            ack_policy=AckPolicy.ALL,
            ack_wait=CONSUMER_ACK_WAIT_SECONDS,
            max_ack_pending=self.batch * 2,
            max_deliver=-1,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=self.position + 1,
        )
        if len(self.subjects) == 1:
            config.filter_subject = self.subjects[0]
        else:
            config.filter_subjects = self.subjects
        # The JetStream consumer is only a cursor; ours is the position in our store.
        with contextlib.suppress(NotFoundError):
            await js.delete_consumer(self.stream, self.name)
        await js.add_consumer(self.stream, config)
        pull = PullStream(self._connection(), self.stream, self.name, self.batch)
        await pull.start()
        self._pull = pull
        log.info("consumer.bound", consumer=self.name, position=self.position)

    async def _unbind(self) -> None:
        with contextlib.suppress(KeyError):
            LAG.remove(self.name)  # the leading replica reports it
        self._unrecorded_since = None  # the rebind reads the recorded position again
        pull, self._pull = self._pull, None
        if pull is not None:
            with contextlib.suppress(Exception):
                await pull.close()

    async def _refresh_held(self) -> None:
        assert self.dead is not None
        self._held_dirty = False
        self._held = await self.dead.held_tokens(self.name)
        PARKED.labels(self.name).set(await self.dead.count(self.name))

    # ---- one batch -----------------------------------------------------------------

    async def _handle(self, msgs: list[Msg]) -> None:
        started = time.perf_counter()
        msgs.sort(key=lambda m: m.metadata.sequence.stream)
        items = [self._item(m) for m in msgs if m.metadata.sequence.stream > self.position]
        skipped = len(msgs) - len(items)
        if skipped:
            EVENTS.labels(self.name, "replay_skipped").inc(skipped)
        if items:
            # The heartbeat starts only if the batch is still running when it is due:
            # a task per batch, started and cancelled, cost more than most batches.
            keeping: list[asyncio.Task[None]] = []
            due = asyncio.get_running_loop().call_later(
                CONSUMER_HEARTBEAT_SECONDS,
                lambda: keeping.append(asyncio.create_task(self._keep_alive(msgs))),
            )
            try:
                await self._apply(items)
            finally:
                due.cancel()
                for task in keeping:
                    task.cancel()
        await msgs[-1].ack()  # ack policy "all": the whole batch
        BATCH_SECONDS.labels(self.name).observe(time.perf_counter() - started)

    async def _record(self) -> None:
        """Record the position that batches which wrote nothing moved past."""
        if self._unrecorded_since is None:
            return
        if self._recorded < self.position:
            await self._process([], Tracking(self.name, self.position))
            self._recorded = self.position
        self._unrecorded_since = None

    def _item(self, msg: Msg) -> _Item:
        seq = msg.metadata.sequence.stream
        try:
            envelope = EventEnvelope.model_validate_json(msg.data)
        except ValidationError as exc:
            errors = exc.errors(include_url=False, include_input=False)
            return _Item(msg, seq, "invalid-envelope", None, f"invalid envelope: {errors}")
        return _Item(msg, seq, envelope.subject_id, Consumed(envelope, Tracking(self.name, seq)))

    async def _keep_alive(self, msgs: list[Msg]) -> None:
        """A slow batch (retries) tells JetStream it is still being worked on.

        It also keeps the lag gauge true while the batch is stuck (a store that is
        down): what waits now, this batch included, from JetStream.
        """
        while True:  # started when the first beat is due
            for msg in msgs:
                with contextlib.suppress(Exception):
                    await msg.in_progress()
            with contextlib.suppress(Exception):
                info = await self._js().consumer_info(self.stream, self.name)
                LAG.labels(self.name).set(
                    int(info.num_pending or 0) + int(info.num_ack_pending or 0)
                )
            await asyncio.sleep(CONSUMER_HEARTBEAT_SECONDS)

    async def _apply(self, items: list[_Item]) -> None:
        if self._held_dirty:
            await self._refresh_held()
        last = Tracking(self.name, items[-1].seq)
        ready: list[_Item] = []
        for item in items:
            if item.consumed is None:
                await self._park(item, "invalid", item.error, 1)
            elif item.token in self._held:
                await self._park(item, "held", "an earlier event of this aggregate is parked", 0)
            else:
                ready.append(item)
        if not await self.leadership.confirm():
            raise RuntimeError(f"lost the lease of consumer {self.name}")
        try:
            with consume_spans(self.name, [_span_of(i) for i in ready]):
                wrote = await self._process([i.consumed for i in ready if i.consumed], last)
        except Exception as exc:
            log.warning(
                "consumer.batch_failed", consumer=self.name, size=len(ready), error=repr(exc)
            )
            await self._one_by_one(ready, last)
            wrote = True
        else:
            EVENTS.labels(self.name, "processed").inc(len(ready))
        if wrote is not False or not ready:
            self._recorded, self._unrecorded_since = last.notification_id, None
        elif self._unrecorded_since is None:
            self._unrecorded_since = time.monotonic()
        self._advanced(last.notification_id)

    async def _one_by_one(self, ready: list[_Item], last: Tracking) -> None:
        """Isolate the failing message(s) of a batch: retry each, park what keeps failing."""
        done = self.position
        unrecorded = False  # an event that meant nothing: its position is not written
        for item in ready:
            assert item.consumed is not None
            if item.token in self._held:
                await self._park(item, "held", "an earlier event of this aggregate is parked", 0)
                continue
            attempts = 1

            def count(_: BaseException, attempt: int, delay: float, item: _Item = item) -> None:
                nonlocal attempts
                attempts = attempt + 1
                log.warning(
                    "consumer.retry",
                    consumer=self.name,
                    seq=item.seq,
                    subject_id=item.subject_id,
                    attempt=attempt,
                    retry_in=round(delay, 2),
                )

            consumed = item.consumed

            async def one(consumed: Consumed = consumed) -> None:
                nonlocal unrecorded
                if await self._process([consumed], consumed.tracking) is False:
                    unrecorded = True

            try:
                await retry_async(one, self.patience, count)
                EVENTS.labels(self.name, "processed").inc()
            except Exception as exc:
                await self._park(item, "failed", repr(exc), attempts)
                self._held.add(item.token)
                await self._process([], consumed.tracking)
            done = item.seq
            self._advanced(done)
        if done < last.notification_id or unrecorded:
            await self._process([], last)

    async def _park(self, item: _Item, reason: str, error: str, attempts: int) -> None:
        assert self.dead is not None
        await self.dead.park(
            consumer=self.name,
            service=self.service,
            reason=reason,
            error=error,
            attempts=attempts,
            stream_seq=item.seq,
            subject=item.msg.subject,
            subject_id=item.subject_id,
            data=item.msg.data,
            traceparent=(item.trace_headers or {}).get(TRACEPARENT),
        )
        EVENTS.labels(self.name, "parked").inc()
        PARKED.labels(self.name).inc()
        log.error(
            "consumer.parked",
            consumer=self.name,
            seq=item.seq,
            subject_id=item.subject_id,
            reason=reason,
            attempts=attempts,
            error=error[:500],
        )

    def _advanced(self, seq: int) -> None:
        self.position = max(self.position, seq)
        POSITION.labels(self.name).set(self.position)
        self._progress.set()

    # ---- read-your-writes ----------------------------------------------------------

    async def caught_up(self, timeout: float = 5.0) -> bool:
        """Wait until every event of our subjects already on the stream is processed.

        False when the stream cannot say where its head is (a NATS node died and
        JetStream is electing a new leader): the caller then asks the owner
        instead of trusting a view that may be behind.
        """
        try:
            target = await self._stream_head()
        except (NatsError, TimeoutError) as exc:
            log.warning("consumer.head_unknown", consumer=self.name, error=repr(exc))
            return False
        deadline = time.monotonic() + timeout
        delay = 0.002
        while True:
            if self.leadership.leading and self._pull is not None:
                current = self.position
            else:
                recorded = await asyncio.to_thread(self._position)
                current = recorded or 0
            if current >= target:
                return True
            if self._pull is not None:
                self._pull.hurry()  # a lingering batch goes now
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                log.warning("consumer.not_caught_up", consumer=self.name, target=target)
                return False
            self._progress.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(delay, remaining)):  # no task, unlike wait_for
                    await self._progress.wait()
            delay = min(delay * 2, 0.05)

    async def _stream_head(self) -> int:
        """The sequence of the last event of our subjects, read after this call began.

        Concurrent callers share one read: each waits for the next read that
        starts after it arrived (a read already under way may have missed an
        event published just before the caller asked). Fifty joins in flight
        asked JetStream for the head fifty times; now a few times.
        """
        waiter: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._head_waiters.append(waiter)
        if not self._head_reading:
            self._head_reading = True
            self._head_task = asyncio.create_task(self._read_heads())
        return await waiter

    async def _read_heads(self) -> None:
        try:
            while self._head_waiters:
                waiters, self._head_waiters = self._head_waiters, []
                try:
                    head: int | BaseException = await self._read_head()
                except Exception as exc:  # each caller gets the failure; none hangs
                    head = exc
                for waiter in waiters:
                    if waiter.done():
                        continue  # its caller gave up
                    if isinstance(head, BaseException):
                        waiter.set_exception(head)
                    else:
                        waiter.set_result(head)
        finally:
            self._head_reading = False

    async def _read_head(self) -> int:
        js = self._js()

        async def last(subject: str) -> int:
            try:
                return int((await js.get_last_msg(self.stream, subject)).seq or 0)
            except NotFoundError:
                return 0

        return max(await asyncio.gather(*(last(s) for s in self.subjects)))

    # ---- dead letters (operator commands) --------------------------------------------

    async def parked(self, subject_id: str | None = None) -> list[Parked]:
        """This consumer's parked messages (of one aggregate), oldest first."""
        assert self.dead is not None
        return await self.dead.list(self.name, subject_id)

    async def retry_parked(self, seq: int | None = None) -> dict[str, Any]:
        """Apply parked messages again, in order: those of `seq`'s aggregate, or all.

        Each aggregate's messages are retried oldest first and removed once
        applied; the first failure stops that aggregate (the rest stay parked
        behind it).  Returns what happened.
        """
        assert self.dead is not None
        subject_id = None
        if seq is not None:
            target = await self.dead.get(seq)
            if target is None or target.consumer != self.name:
                return {"retried": 0, "failed": [], "error": f"no parked message {seq}"}
            subject_id = target.subject_id
        retried, failed = 0, []
        blocked: set[str] = set()
        for parked in await self.dead.list(self.name, subject_id):
            if parked.subject_id in blocked:
                continue
            try:
                consumed = Consumed(
                    EventEnvelope.model_validate_json(parked.data),
                    Tracking(f"{self.name}.dlq", parked.seq),
                )
                with contextlib.suppress(IntegrityError):  # applied before; only the delete failed
                    await self._process([consumed], consumed.tracking)
            except Exception as exc:
                blocked.add(parked.subject_id)
                failed.append(
                    {"seq": parked.seq, "subjectId": parked.subject_id, "error": repr(exc)}
                )
                log.warning(
                    "consumer.retry_failed", consumer=self.name, seq=parked.seq, error=repr(exc)
                )
                continue
            await self.dead.delete(parked.seq)
            retried += 1
            log.info(
                "consumer.unparked",
                consumer=self.name,
                seq=parked.seq,
                subject_id=parked.subject_id,
            )
        await self.dead.announce(self.name)
        await self._refresh_held()
        return {"retried": retried, "failed": failed}

    async def drop_parked(self, seq: int | None = None) -> dict[str, Any]:
        """Remove parked messages (one, or all of this consumer) without applying them."""
        assert self.dead is not None
        targets = [seq] if seq is not None else [p.seq for p in await self.dead.list(self.name)]
        dropped = 0
        for target in targets:
            parked = await self.dead.get(target)
            if (
                parked is not None
                and parked.consumer == self.name
                and await self.dead.delete(target)
            ):
                dropped += 1
                log.warning("consumer.dropped", consumer=self.name, seq=target)
        await self.dead.announce(self.name)
        await self._refresh_held()
        return {"dropped": dropped}
