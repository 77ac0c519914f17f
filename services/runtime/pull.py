"""A continuous pull from a JetStream consumer: requests kept outstanding, deliveries buffered.

nats-py's `fetch()` sends a no-wait request and then a waiting one for every
call, so a consumer that handles one event at a time (one client, one create)
pays four messages and two server round trips per event on top of the event
and its ack.  `PullStream` keeps one waiting request of `batch` messages open
(with an idle heartbeat), tops it up when half of it has been delivered, and
buffers what arrives; the consumer takes what is buffered.  Per event that
leaves the delivery and the ack (bench/fanout_floor.py measures the difference).

A pull can lose deliveries only when the connection drops while they are in
flight.  An ack-all after such a loss would acknowledge messages nobody saw, so
the stream reports it instead (`PullBroken`): after a reconnect, after a
delivery whose consumer sequence skips one, or on a 409 (the consumer was
deleted, its leader changed).  The consumer then rebinds from the position
recorded in its own store.  A consumer that acks each message explicitly (the
webhook deliveries) gets a lost delivery back after its ack wait, so it skips
the sequence check (`check_gaps=False`): its naks make redeliveries that the
check would take for gaps; a reconnect and a 409 still break the stream, since
the open request died with them.
"""

from __future__ import annotations

import asyncio
import json
import time

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from services.runtime.logging import get_logger

log = get_logger("meetplane.pull")

STATUS = "Status"
PENDING_MESSAGES = "Nats-Pending-Messages"


class PullBroken(Exception):
    """Deliveries may have been lost: rebind from the recorded position."""


class PullStream:
    """Keeps pull requests open on one durable consumer and buffers its messages in order."""

    def __init__(
        self,
        connection: Client,
        stream: str,
        consumer: str,
        batch: int,
        *,
        expires: float = 30.0,
        heartbeat: float = 5.0,
        check_gaps: bool = True,
    ) -> None:
        self.connection = connection
        self.subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"
        self.batch = batch
        self.expires = expires
        self.heartbeat = heartbeat
        self.check_gaps = check_gaps
        self._inbox = connection.new_inbox()
        self._sub: Subscription | None = None
        self._buffer: list[Msg] = []
        self._waiter: asyncio.Future[None] | None = None
        self._wake_at = 1  # buffered messages that wake a waiting `take`
        self._hurried = False
        self._outstanding = 0  # messages requested and neither delivered nor expired
        self._heard = time.monotonic()  # last delivery or heartbeat
        self._delivered = 0  # consumer sequence of the last first delivery
        self._broken = ""
        self._reconnects = int(connection.stats["reconnects"])

    async def start(self) -> None:
        """Subscribe to the inbox and open the first request."""
        self._sub = await self.connection.subscribe(self._inbox, cb=self._on_message)
        await self._request()

    async def close(self) -> None:
        """Stop receiving (the open request expires on the server)."""
        sub, self._sub = self._sub, None
        if sub is not None:
            await sub.unsubscribe()

    async def take(self, limit: int, timeout: float, linger: float = 0.0) -> list[Msg]:
        """Up to `limit` buffered messages in delivery order; waits up to `timeout` for one.

        With a `linger`, a take that found fewer than `limit`, at the stream's head
        (the last delivery said nothing more was pending), waits up to that long
        for more (unless `hurry()` was called): at a trickle of events, one batch
        (one transaction, one ack) then handles several instead of each alone.  A
        backlog is not waited for: more is on its way, and handling what arrived
        meanwhile keeps the drain as fast as without a linger.
        Empty when nothing arrived in time.  Raises `PullBroken` when deliveries
        may have been lost since the last call.
        """
        if not self._buffer and not self._broken:
            await self._wait(timeout)
        if linger > 0 and 0 < len(self._buffer) < limit and not self._hurried and self._at_head():
            self._wake_at = limit
            try:
                await self._wait(linger)
            finally:
                self._wake_at = 1
        self._hurried = False
        self._check()
        taken, self._buffer = self._buffer[:limit], self._buffer[limit:]
        await self._keep_open()
        return taken

    def _at_head(self) -> bool:
        """Whether the last buffered delivery left nothing pending on the consumer."""
        return self._buffer[-1].metadata.num_pending == 0

    async def _wait(self, timeout: float) -> None:
        # A bare future and a timer: `asyncio.wait_for` would start a task per wait.
        if self._broken:
            return
        loop = asyncio.get_running_loop()
        self._waiter = waiter = loop.create_future()
        timer = loop.call_later(timeout, _wake, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    def hurry(self) -> None:
        """Someone waits for what is buffered: the current or next take does not linger."""
        self._hurried = True
        if self._wake_at > 1:
            _wake(self._waiter)

    def interrupt(self) -> None:
        """End a waiting `take` now (it returns what is buffered: nothing)."""
        _wake(self._waiter)

    # ---- internals ---------------------------------------------------------------------

    async def _request(self) -> None:
        wanted = self.batch - self._outstanding
        if wanted <= 0:
            return
        body = {
            "batch": wanted,
            "expires": int(self.expires * 1e9),
            "idle_heartbeat": int(self.heartbeat * 1e9),
        }
        await self.connection.publish(self.subject, json.dumps(body).encode(), reply=self._inbox)
        self._outstanding += wanted

    async def _keep_open(self) -> None:
        """Top the request up at half; reopen it when the server was quiet for three heartbeats."""
        if time.monotonic() - self._heard > 3 * self.heartbeat:
            log.info("pull.reopened", subject=self.subject, outstanding=self._outstanding)
            self._outstanding = 0
            self._heard = time.monotonic()
        if self._outstanding <= self.batch // 2:
            await self._request()

    def _check(self) -> None:
        if self.connection.stats["reconnects"] != self._reconnects:
            self._broken = self._broken or "reconnected"
        if self._broken:
            raise PullBroken(self._broken)

    async def _on_message(self, msg: Msg) -> None:
        self._heard = time.monotonic()
        status = msg.headers.get(STATUS) if msg.headers else None
        if status is None:
            self._outstanding = max(0, self._outstanding - 1)
            if self.check_gaps and msg.metadata.num_delivered == 1:
                sequence = msg.metadata.sequence.consumer
                if self._delivered and sequence != self._delivered + 1:
                    self._broken = f"consumer sequence {self._delivered} -> {sequence}"
                self._delivered = max(self._delivered, sequence)
            self._buffer.append(msg)
            if len(self._buffer) >= self._wake_at:
                _wake(self._waiter)
        elif status == "408":  # a request expired: what it did not deliver is not coming
            left = (msg.headers or {}).get(PENDING_MESSAGES)
            self._outstanding = max(0, self._outstanding - int(left)) if left else 0
            _wake(self._waiter)  # `take` opens the next one now, not at its timeout
        elif status == "409":  # consumer deleted, leader changed, limits: start over
            self._broken = f"409 {(msg.headers or {}).get('Description', '')}".strip()
            _wake(self._waiter)
        # 100: idle heartbeat (already noted); 404 is only sent to no-wait requests


def _wake(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)
