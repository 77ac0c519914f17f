"""eventsourcing's SQLite persistence with `synchronous=NORMAL` (selected by `PERSISTENCE_MODULE`).

eventsourcing opens SQLite in WAL mode and leaves `synchronous` at FULL, an
fsync on every commit.  In WAL mode `synchronous=NORMAL` still never corrupts
the database and loses nothing when a *process* crashes (committed transactions
are in the WAL, which the next opener replays); what it gives up is the last
transactions before a power loss or kernel crash, which the WAL had not yet
fsynced.  The embedded platform runs on one machine for development and small
deployments; production uses PostgreSQL (see the README's trade-off note).
"""

from __future__ import annotations

from eventsourcing import sqlite
from eventsourcing.utils import Environment, EnvType


class _NormalSyncPool(sqlite.SQLiteConnectionPool):
    """Connections with `synchronous=NORMAL` (safe against process crashes in WAL mode)."""

    def _create_connection(self) -> sqlite.SQLiteConnection:
        connection = super()._create_connection()
        connection._sqlite_conn.execute("PRAGMA synchronous=NORMAL")
        return connection


class Factory(sqlite.SQLiteFactory):
    """The SQLite factory whose datastore uses `_NormalSyncPool`."""

    def __init__(self, env: Environment | EnvType | None):
        super().__init__(env)
        old: sqlite.SQLiteDatastore = self.datastore
        old.pool.close()
        self.datastore = sqlite.SQLiteDatastore(
            db_name=old.pool.db_name,
            lock_timeout=old.pool.lock_timeout,
            single_row_tracking=old.single_row_tracking,
            originator_id_type=old.originator_id_type,
        )
        self.datastore.pool = _NormalSyncPool(
            db_name=old.pool.db_name, lock_timeout=old.pool.lock_timeout
        )
