"""The dead-letter stream: where a consumer parks a message it cannot handle, and moves on.

A parked message keeps the original bytes and says, in headers, which consumer
parked it, why, after how many attempts, and where it came from; it keeps the
W3C `traceparent` of the original message (its headers', else its envelope's),
so `dlq show` gives the trace id of the command that caused it.  Its subject is
`meetplane.dlq.<consumer>.<aggregate token>`, so "has this consumer parked
anything of this aggregate?" is one question to the stream (`subjects_filter`),
and a consumer holds back later events of such an aggregate (parks them too, in
order) instead of applying them out of order.  Other aggregates go on.

Operators read parked messages with `meetplane dlq list | show`; `retry` and
`drop` go to the owning service as commands (it runs its own handler on them)
and each change is announced on `meetplane.dlq.changed.<consumer>` so every
replica refreshes what it holds back.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

import nats
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from contracts.streams import DLQ_SUBJECT_PREFIX
from services.runtime.telemetry import TRACEPARENT, trace_id_of

HEADER_CONSUMER = "Meetplane-Consumer"
HEADER_SERVICE = "Meetplane-Service"
HEADER_ERROR = "Meetplane-Error"
HEADER_ATTEMPTS = "Meetplane-Attempts"
HEADER_REASON = "Meetplane-Reason"
HEADER_STREAM_SEQ = "Meetplane-Stream-Seq"
HEADER_SUBJECT = "Meetplane-Subject"
HEADER_SUBJECT_ID = "Meetplane-Subject-Id"
HEADER_PARKED_AT = "Meetplane-Parked-At"
CHANGED_PREFIX = "meetplane.dlq-changed"
MAX_ERROR_CHARS = 2000


def aggregate_token(subject_id: str) -> str:
    """A subject-safe token for an aggregate id (room id, meeting id...)."""
    return hashlib.sha256(subject_id.encode()).hexdigest()[:20]


def consumer_subjects(consumer: str) -> str:
    """Every parked subject of one consumer."""
    return f"{DLQ_SUBJECT_PREFIX}.{consumer}.>"


def parked_subject(consumer: str, subject_id: str) -> str:
    """Where a message of `subject_id` parked by `consumer` goes."""
    return f"{DLQ_SUBJECT_PREFIX}.{consumer}.{aggregate_token(subject_id)}"


def changed_subject(consumer: str) -> str:
    """Core NATS subject announcing that a consumer's parked set changed."""
    return f"{CHANGED_PREFIX}.{consumer}"


@dataclass(frozen=True)
class Parked:
    """One parked message, as `meetplane dlq list/show` prints it."""

    seq: int
    consumer: str
    service: str
    reason: str
    error: str
    attempts: int
    stream_seq: int
    subject: str
    subject_id: str
    parked_at: float
    data: bytes
    traceparent: str = ""

    def summary(self) -> dict[str, Any]:
        """Everything but the body."""
        return {
            "seq": self.seq,
            "consumer": self.consumer,
            "service": self.service,
            "reason": self.reason,
            "error": self.error,
            "attempts": self.attempts,
            "streamSeq": self.stream_seq,
            "subject": self.subject,
            "subjectId": self.subject_id,
            "parkedAt": self.parked_at,
            "traceId": trace_id_of(self.traceparent),
        }


def _parked(seq: int, headers: dict[str, str] | None, data: bytes) -> Parked:
    h = headers or {}
    return Parked(
        seq=seq,
        consumer=h.get(HEADER_CONSUMER, ""),
        service=h.get(HEADER_SERVICE, ""),
        reason=h.get(HEADER_REASON, ""),
        error=h.get(HEADER_ERROR, ""),
        attempts=int(h.get(HEADER_ATTEMPTS, "0") or 0),
        stream_seq=int(h.get(HEADER_STREAM_SEQ, "0") or 0),
        subject=h.get(HEADER_SUBJECT, ""),
        subject_id=h.get(HEADER_SUBJECT_ID, ""),
        parked_at=float(h.get(HEADER_PARKED_AT, "0") or 0),
        data=data,
        traceparent=h.get(TRACEPARENT, ""),
    )


class DeadLetters:
    """Read and write the dead-letter stream of one event stream."""

    def __init__(self, nc: nats.NATS, stream: str) -> None:
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream()
        self.stream = stream

    async def park(
        self,
        *,
        consumer: str,
        service: str,
        reason: str,
        error: str,
        attempts: int,
        stream_seq: int,
        subject: str,
        subject_id: str,
        data: bytes,
        traceparent: str | None = None,
    ) -> None:
        """Store a message; a second park of the same (consumer, stream seq) is a duplicate.

        `traceparent` is the original message's trace context, kept as its header.
        """
        headers = {
            "Nats-Msg-Id": f"{consumer}:{stream_seq}",
            HEADER_CONSUMER: consumer,
            HEADER_SERVICE: service,
            HEADER_REASON: reason,
            # Header values are one line.
            HEADER_ERROR: " ".join(error.split())[:MAX_ERROR_CHARS],
            HEADER_ATTEMPTS: str(attempts),
            HEADER_STREAM_SEQ: str(stream_seq),
            HEADER_SUBJECT: subject,
            HEADER_SUBJECT_ID: subject_id,
            HEADER_PARKED_AT: f"{time.time():.3f}",
        }
        if traceparent:
            headers[TRACEPARENT] = traceparent
        await self.js.publish(
            parked_subject(consumer, subject_id), data, stream=self.stream, headers=headers
        )

    async def held_tokens(self, consumer: str) -> set[str]:
        """Aggregate tokens this consumer has parked messages of."""
        try:
            info = await self.js.stream_info(
                self.stream, subjects_filter=consumer_subjects(consumer)
            )
        except NotFoundError:
            return set()
        subjects = info.state.subjects or {}
        return {subject.rsplit(".", 1)[-1] for subject, count in subjects.items() if count}

    async def count(self, consumer: str | None = None) -> int:
        """Parked messages (of one consumer, or all)."""
        try:
            if consumer is None:
                return int((await self.js.stream_info(self.stream)).state.messages)
            info = await self.js.stream_info(
                self.stream, subjects_filter=consumer_subjects(consumer)
            )
        except NotFoundError:
            return 0
        return sum((info.state.subjects or {}).values())

    async def list(
        self, consumer: str | None = None, subject_id: str | None = None, limit: int = 1000
    ) -> list[Parked]:
        """Parked messages in the order they were parked."""
        if consumer and subject_id:
            subject = parked_subject(consumer, subject_id)
        elif consumer:
            subject = consumer_subjects(consumer)
        else:
            subject = f"{DLQ_SUBJECT_PREFIX}.>"
        try:
            info = await self.js.stream_info(self.stream)
        except NotFoundError:
            return []
        if not info.state.messages:
            return []
        sub = await self.js.subscribe(
            subject,
            stream=self.stream,
            ordered_consumer=True,
            config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
        )
        found: list[Parked] = []
        try:
            while len(found) < limit:
                try:
                    msg = await sub.next_msg(timeout=0.5)
                except TimeoutError:
                    break
                meta = msg.metadata
                found.append(_parked(meta.sequence.stream, msg.headers, msg.data))
                if meta.num_pending == 0:
                    break
        finally:
            await sub.unsubscribe()
        return found

    async def get(self, seq: int) -> Parked | None:
        """One parked message by its sequence in the dead-letter stream."""
        try:
            msg = await self.js.get_msg(self.stream, seq)
        except NotFoundError:
            return None
        return _parked(seq, msg.headers, msg.data or b"")

    async def delete(self, seq: int) -> bool:
        """Remove one parked message (after a successful retry, or a drop)."""
        try:
            return bool(await self.js.delete_msg(self.stream, seq))
        except NotFoundError:
            return False

    async def announce(self, consumer: str) -> None:
        """Tell every replica that `consumer`'s parked set changed."""
        await self.nc.publish(changed_subject(consumer), b"")
