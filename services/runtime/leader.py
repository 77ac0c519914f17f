"""Leases that make one replica the leader of a log follower (outbox, projection).

Followers are idempotent, so two leaders would only waste work; the lease keeps
the work single.  PostgreSQL: a session advisory lock on a dedicated connection
(released by the server when the holder dies).  SQLite (one machine): an
exclusive `flock` on a file in the data dir (released by the kernel on exit).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from pathlib import Path
from typing import Protocol

from services.runtime.logging import get_logger

log = get_logger("meetplane.leader")


class Lease(Protocol):
    """A try-lock held for as long as the process (or its session) lives."""

    # Whether the lease can be lost while the process lives (a database session can end).
    can_be_lost: bool

    def try_acquire(self) -> bool:
        """Take the lease if free; True while held."""
        ...

    def release(self) -> None:
        """Give the lease up."""
        ...


class FileLease:
    """An exclusive flock on `path`."""

    can_be_lost = False

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None

    def try_acquire(self) -> bool:
        """Non-blocking flock; the kernel releases it when the process dies."""
        if self.fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self.fd = fd
        return True

    def release(self) -> None:
        """Unlock and close."""
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


class PostgresLease:
    """A session-level advisory lock on its own connection."""

    can_be_lost = True

    def __init__(self, dsn: str, name: str) -> None:
        self.dsn = dsn
        self.key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
        self.name = name
        self.conn: object | None = None

    def try_acquire(self) -> bool:
        """Try the advisory lock; a lost connection means a lost lease."""
        import psycopg

        try:
            if self.conn is not None:
                self.conn.execute("SELECT 1")  # type: ignore[attr-defined]
                return True
            conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=5)
            held = conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()
            if held and held[0]:
                self.conn = conn
                log.info("leader.acquired", lease=self.name)
                return True
            conn.close()
            return False
        except psycopg.Error:
            self.release()
            return False

    def release(self) -> None:
        """Close the session: the server drops the lock."""
        if self.conn is not None:
            try:
                self.conn.close()  # type: ignore[attr-defined]
            finally:
                self.conn = None


class Leadership:
    """Whether this replica leads a piece of work, asking its `Lease` at most every `recheck` s.

    No lease means "always lead" (a single replica, or work that is safe to
    duplicate).  Followers and consumers ask `leads()` before each unit of work;
    `confirm()` forces a fresh check right before committing, so a replica whose
    lease was lost (its PostgreSQL session ended) stops before it writes.
    """

    def __init__(self, name: str, lease: Lease | None, recheck: float = 2.0) -> None:
        self.name = name
        self.lease = lease
        self.recheck = recheck
        self.leading = lease is None
        self._checked = float("-inf")

    async def leads(self) -> bool:
        """Hold the lease (or take it); cached for `recheck` seconds while held."""
        import asyncio
        import time

        if self.lease is None:
            return True
        now = time.monotonic()
        if self.leading and now - self._checked < self.recheck:
            return True
        self._checked = now
        held = await asyncio.to_thread(self.lease.try_acquire)
        if held != self.leading:
            log.info("leader.changed", work=self.name, leading=held)
        self.leading = held
        return held

    async def confirm(self) -> bool:
        """Check the lease now (not from the cache)."""
        if self.lease is None or not self.lease.can_be_lost:
            return self.leading
        self._checked = float("-inf")
        return await self.leads()

    async def release(self) -> None:
        """Give the lease up (shutdown)."""
        import asyncio

        if self.lease is not None and self.leading:
            await asyncio.to_thread(self.lease.release)
        self.leading = self.lease is None
