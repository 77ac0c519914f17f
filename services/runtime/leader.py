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

    def try_acquire(self) -> bool:
        """Take the lease if free; True while held."""
        ...

    def release(self) -> None:
        """Give the lease up."""
        ...


class FileLease:
    """An exclusive flock on `path`."""

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
