"""One `meetplane up` per data directory: an exclusive lock held for the launcher's life.

Two launchers on one data dir would open the same JetStream store, SQLite files
and S3 volumes.  The lock is an `flock` on `<data dir>/up.lock`, released by the
kernel however the launcher ends (even SIGKILL), so a stale file never blocks a
restart.  The file holds the owner's pid, for the refusal message.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path

LOCK_FILE = "up.lock"


def run_info_path(data_dir: Path) -> Path:
    """Where a running `up` says what it started (pid, NATS URL, gateway URL)."""
    return Path(data_dir) / "run" / "up.json"


def running_nats_url(data_dir: Path) -> str | None:
    """The NATS URL of the `up` running on `data_dir`, if one runs."""
    try:
        info = json.loads(run_info_path(data_dir).read_text())
        os.kill(int(info["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None  # no file, unreadable, or its launcher is gone
    url = info.get("nats_url")
    return str(url) if url else None


class DataDirInUse(Exception):
    """Another process holds the data dir's lock."""

    def __init__(self, data_dir: Path, owner: str) -> None:
        who = f"pid {owner}" if owner else "another process"
        super().__init__(
            f"data dir {data_dir} is in use by another `meetplane up` ({who}); "
            "stop it first, or set MEETPLANE_DATA_DIR to another directory"
        )
        self.data_dir = data_dir
        self.owner = owner


class DataDirLock:
    """Hold `<data dir>/up.lock` from `acquire()` until `release()` or process exit."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock now or raise `DataDirInUse` (never waits)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # Not inherited by children (Python's default): only the launcher holds it.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            raise DataDirInUse(self.data_dir, owner) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Give the lock up (process exit does the same)."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
        os.close(self._fd)  # closing the descriptor releases the flock
        self._fd = None
