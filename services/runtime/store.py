"""Event-store and read-model store factories: SQLite file by default, PostgreSQL by setting.

Both are configured from `RuntimeSettings`; the same application code runs on
either, through eventsourcing's persistence modules and SQLAlchemy Core.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, cast
from urllib.parse import unquote, urlparse
from uuid import UUID

import sqlalchemy as sa
from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import (
    IntegrityError,
    Mapper,
    Notification,
    ProcessRecorder,
    Recording,
    StoredEvent,
    Tracking,
)

from services.runtime.commits import COMMIT_MARK
from services.runtime.leader import FileLease, Lease, PostgresLease
from services.runtime.settings import RuntimeSettings
from services.runtime.telemetry import commit_span, span_traceparent

if TYPE_CHECKING:
    from services.runtime.consumer import Consumed

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])
# Called from the committing thread after a commit, with the notifications it wrote
# (in id order): followers in this process take them without reading them back.
CommitListener = Callable[[Sequence[Notification]], None]


def retries_on_conflict(method: F) -> F:
    """Decorate an Application method: re-run it when a concurrent writer won the race."""

    @functools.wraps(method)
    def wrapper(self: ServiceApplication, *args: Any, **kwargs: Any) -> Any:
        return self.retry_on_conflict(lambda: method(self, *args, **kwargs))

    return cast(F, wrapper)


def runs_on_loop(recorder: object) -> bool:
    """Whether a blocking call on this store runs on the event loop rather than a thread.

    On SQLite (the embedded default) a call is CPU work of tens to hundreds of
    microseconds with no network wait, and a thread hop (wake a worker, then the
    loop) cost about 0.2 ms of CPU on the benchmark machine (bench/perf.py: the
    meetings consumer's CPU per consumed event fell from 1.65 to 1.42 ms without
    it): more than most calls, for no overlap, since the GIL serialised the work
    anyway.  A SQLite commit does not fsync (WAL, `synchronous=NORMAL`); a WAL
    checkpoint, every few MB, does, and holds the loop for that long.  PostgreSQL
    calls wait on the network: they go to a worker thread.
    """
    return not type(recorder).__module__.startswith("eventsourcing.postgres")


def service_dsn(settings: RuntimeSettings, service: str, env: dict[str, str]) -> str:
    """The PostgreSQL DSN for a service: `MEETPLANE_<SERVICE>_POSTGRES_DSN` or the shared one."""
    dsn = env.get(f"MEETPLANE_{service.upper()}_POSTGRES_DSN") or settings.postgres_dsn
    if not dsn:
        raise ValueError(
            f"MEETPLANE_STORE=postgres needs MEETPLANE_POSTGRES_DSN "
            f"or MEETPLANE_{service.upper()}_POSTGRES_DSN"
        )
    return dsn


def aggregate_cache(settings: RuntimeSettings) -> dict[str, str]:
    """Keep recently used aggregates in memory (`MEETPLANE_AGGREGATE_CACHE_SIZE` of them).

    "Fast-forward" reads the events other replicas stored since, so a cached
    aggregate is never stale when loaded.  A miss rebuilds the aggregate from its
    snapshot and events: sized below the live rooms, a consumer that touches
    every room (meeting starts and ends) rebuilds most of them.
    """
    return {
        "AGGREGATE_CACHE_MAXSIZE": str(settings.aggregate_cache_size),
        "AGGREGATE_CACHE_FASTFORWARD": "y",
        "DEEPCOPY_FROM_AGGREGATE_CACHE": "y",
    }


def postgres_schema(settings: RuntimeSettings, service: str, env: dict[str, str]) -> str:
    """The service's schema: `MEETPLANE_<SERVICE>_POSTGRES_SCHEMA`, else prefix + service name."""
    return env.get(
        f"MEETPLANE_{service.upper()}_POSTGRES_SCHEMA",
        f"{settings.postgres_schema_prefix}{service}",
    )


def eventsourcing_env(
    settings: RuntimeSettings, service: str, env: dict[str, str] | None = None
) -> dict[str, str]:
    """The eventsourcing environment for a service's Application.

    Multi-row tracking is on so a consumer can ask "did I process exactly this
    stream sequence?" even when messages arrive out of order (redeliveries,
    several replicas in a queue group).
    """
    import os

    env = dict(os.environ) if env is None else env
    if settings.store == "postgres":
        dsn = service_dsn(settings, service, env)
        ensure_postgres_schema(dsn, postgres_schema(settings, service, env))
        url = urlparse(dsn)
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": url.path.lstrip("/") or "postgres",
            "POSTGRES_HOST": url.hostname or "127.0.0.1",
            "POSTGRES_PORT": str(url.port or 5432),
            "POSTGRES_USER": unquote(url.username or "postgres"),
            "POSTGRES_PASSWORD": unquote(url.password or ""),
            "POSTGRES_SCHEMA": postgres_schema(settings, service, env),
            "POSTGRES_POOL_SIZE": str(settings.postgres_pool_size),
            "POSTGRES_MAX_OVERFLOW": str(settings.postgres_pool_overflow),
            "SINGLE_ROW_TRACKING": "f",
            "CREATE_TABLE": "y",
            **aggregate_cache(settings),
        }
    folder = Path(settings.data_dir) / service
    folder.mkdir(parents=True, exist_ok=True)
    return {
        # eventsourcing's SQLite with synchronous=NORMAL (see services/runtime/sqlite_store.py).
        "PERSISTENCE_MODULE": "services.runtime.sqlite_store",
        "SQLITE_DBNAME": str(folder / "events.sqlite"),
        "SQLITE_LOCK_TIMEOUT": "10",
        "SINGLE_ROW_TRACKING": "f",
        "CREATE_TABLE": "y",
        **aggregate_cache(settings),
    }


def ensure_postgres_schema(dsn: str, schema: str) -> None:
    """Create the service's schema if missing (eventsourcing creates tables, not schemas).

    Look before creating: PostgreSQL checks CREATE on the database before it looks
    for the schema, so `CREATE SCHEMA IF NOT EXISTS` fails for a least-privilege
    user whose schema an administrator created for it (deploy/postgres/README.md).
    """
    import psycopg

    with psycopg.connect(dsn) as conn:
        if conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone():
            return
        # Replicas starting together would race in the catalog: take turns.
        conn.execute("SELECT pg_advisory_xact_lock(7343219)")
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        conn.commit()


def view_engine(
    settings: RuntimeSettings, service: str, env: dict[str, str] | None = None
) -> sa.Engine:
    """SQLAlchemy engine for a service's read models (its own file or schema)."""
    import os

    env = dict(os.environ) if env is None else env
    if settings.store == "postgres":
        dsn = service_dsn(settings, service, env)
        schema = postgres_schema(settings, service, env)
        ensure_postgres_schema(dsn, schema)
        url = sa.make_url(dsn).set(drivername="postgresql+psycopg")
        return sa.create_engine(
            url,
            pool_size=settings.postgres_pool_size,
            max_overflow=settings.postgres_pool_overflow,
            pool_pre_ping=True,
            connect_args={"options": f"-csearch_path={schema}"},
        )
    folder = Path(settings.data_dir) / service
    folder.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(f"sqlite:///{folder / 'views.sqlite'}", connect_args={"timeout": 30})

    @sa.event.listens_for(engine, "connect")
    def _wal(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    return engine


class UnitOfWork:
    """The aggregates one consumed batch loads and changes, saved together at its end.

    An identity map: the second event of a batch about an aggregate sees what the
    first one did to it, before anything is stored.
    """

    def __init__(self, app: ServiceApplication, presume_new: bool = False) -> None:
        self.app = app
        self.presume_new = presume_new
        self._loaded: dict[UUID, Any] = {}

    def get_for_create(self, aggregate_id: UUID) -> Any | None:
        """`get` for an event that creates the aggregate: on a first attempt, presumed new.

        A create's aggregate almost never exists yet, and asking the store costs
        a query (a transaction on SQLite) per event: a third of a consumer's work
        for room creates.  So on the batch's first attempt an aggregate that is
        neither in this batch nor in the cache is taken as new without asking.  If
        it did exist (a create delivered twice), saving the new one fails on its
        version and the batch is applied again with `presume_new` off.
        """
        if (
            self.presume_new
            and aggregate_id not in self._loaded
            and self.app.cached(aggregate_id) is None
        ):
            self._loaded[aggregate_id] = None
            return None
        return self.get(aggregate_id)

    def get(self, aggregate_id: UUID) -> Any | None:
        """The aggregate (as this batch left it), None if it does not exist."""
        if aggregate_id not in self._loaded:
            try:
                self._loaded[aggregate_id] = self.app.repository.get(aggregate_id)
            except AggregateNotFoundError:
                self._loaded[aggregate_id] = None
        return self._loaded[aggregate_id]

    def add(self, aggregate: Any) -> Any:
        """Track a new aggregate; returns it."""
        self._loaded[aggregate.id] = aggregate
        return aggregate

    def aggregates(self) -> list[Any]:
        """Everything loaded or added (unchanged ones save nothing)."""
        return [a for a in self._loaded.values() if a is not None]


Apply = Callable[[UnitOfWork, "Consumed"], None]

# The reserved key of a stored event's state that holds the `traceparent` of the
# commit that stored it (never a domain event attribute: stripped when read).
TRACE_KEY = "_meetplane_traceparent"
_COMMIT_TRACEPARENT: ContextVar[str | None] = ContextVar("commit_traceparent", default=None)


class TracedMapper(Mapper[Any]):
    """eventsourcing's mapper, keeping the commit's trace context in each stored event.

    While `ServiceApplication._record` has a recording commit span, every event it
    stores gets the span's W3C `traceparent` under `TRACE_KEY` in its state (one
    more short field; nothing when tracing is off).  Reading strips it again, so
    domain events never see it; `traced_event` also returns it, for the outbox.
    """

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        traceparent = _COMMIT_TRACEPARENT.get()
        if traceparent is None:
            return super().to_stored_event(domain_event)
        carrier = object.__new__(type(domain_event))
        object.__setattr__(carrier, "__dict__", {**vars(domain_event), TRACE_KEY: traceparent})
        return super().to_stored_event(carrier)

    # Notifications decoded lately, shared by the followers of one application (the
    # outbox, the projection, side effects read the same notifications moments apart).
    DECODED_MAX = 4096

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._decoded: OrderedDict[int, tuple[Any, str | None]] = OrderedDict()
        self._decoded_lock = threading.Lock()

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        return self.traced_event(stored_event)[0]

    def traced_notification(self, notification: Notification) -> tuple[Any, str | None]:
        """`traced_event` of a notification, decoded once for every follower that reads it.

        Stored events never change, so the decoded event (immutable) is shared.
        """
        with self._decoded_lock:
            decoded = self._decoded.get(notification.id)
        if decoded is None:
            decoded = self.traced_event(notification)
            with self._decoded_lock:
                self._decoded[notification.id] = decoded
                if len(self._decoded) > self.DECODED_MAX:
                    self._decoded.popitem(last=False)
        return decoded

    def traced_event(self, stored_event: StoredEvent) -> tuple[Any, str | None]:
        """The domain event and the `traceparent` of the commit that stored it (or None)."""
        domain_event = super().to_domain_event(stored_event)
        return domain_event, vars(domain_event).pop(TRACE_KEY, None)


class ServiceApplication(Application[Any]):
    """An eventsourcing Application with a process recorder and commit listeners.

    The process recorder lets consumers record a tracking position in the same
    transaction as the events their handling produced (exactly-once effect).
    Listeners are told after each commit so the outbox and projections wake up
    at once instead of waiting for their next poll.
    """

    env: ClassVar[dict[str, str]] = {"IS_SNAPSHOTTING_ENABLED": "y"}

    def __init__(self, env: dict[str, str] | None = None) -> None:
        super().__init__(env)
        self._listeners: list[CommitListener] = []
        self._listeners_lock = threading.Lock()

    def construct_mapper(self) -> TracedMapper:
        """The mapper that stores each commit's trace context with its events."""
        mapper = self.factory.mapper(
            transcoder=self.construct_transcoder(), mapper_class=TracedMapper
        )
        assert isinstance(mapper, TracedMapper)
        return mapper

    @property
    def traced_mapper(self) -> TracedMapper:
        """The mapper, typed as the `TracedMapper` it is."""
        assert isinstance(self.mapper, TracedMapper)
        return self.mapper

    def construct_recorder(self) -> ProcessRecorder:
        """Use a process recorder so tracking can be written with events."""
        return self.factory.process_recorder()

    @property
    def process_recorder(self) -> ProcessRecorder:
        """The recorder, typed as the process recorder it is."""
        assert isinstance(self.recorder, ProcessRecorder)
        return self.recorder

    @functools.cached_property
    def on_loop(self) -> bool:
        """Whether this service's store calls run on the event loop (`runs_on_loop`)."""
        return runs_on_loop(self.recorder)

    async def call(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking call on this service's stores (events, views) from a coroutine.

        The event store and the views are on the same kind of database (one
        `MEETPLANE_STORE`), so one decision covers both.
        """
        if self.on_loop:
            return func(*args, **kwargs)
        return await asyncio.to_thread(func, *args, **kwargs)

    @staticmethod
    def retry_on_conflict(action: Callable[[], T], attempts: int = 10) -> T:
        """Run a load-mutate-save `action`, again after a concurrent writer won the race.

        Two replicas (or a command and a consumed event) may save the same aggregate
        version; the event store refuses the second (optimistic concurrency), and
        re-running the action on freshly loaded state is the resolution.  Between
        tries a short jittered pause (the one retry policy's backoff) spreads the
        losers out: fifty joins racing for one meeting otherwise collide again and
        again, and one of them could lose every try.
        """
        from tenacity import Retrying, retry_if_exception_type, stop_after_attempt

        from services.runtime.retry import backoff, try_then_retry

        def retrying() -> Retrying:
            return Retrying(
                stop=stop_after_attempt(attempts),
                wait=backoff(initial=0.002, maximum=0.05),
                retry=retry_if_exception_type(IntegrityError),
                reraise=True,
            )

        return try_then_retry(action, lambda e: isinstance(e, IntegrityError), retrying)

    def _record(self, processing_event: ProcessingEvent[Any]) -> list[Recording[Any]]:
        """Record in a span whose `traceparent` is stored with the events (tracing on)."""
        with commit_span(self.name) as span:
            traceparent = span_traceparent(span)
            token = _COMMIT_TRACEPARENT.set(traceparent) if traceparent is not None else None
            try:
                recordings = super()._record(processing_event)
            finally:
                if token is not None:
                    _COMMIT_TRACEPARENT.reset(token)
            if recordings and traceparent is not None:
                span.set_attribute(
                    "meetplane.notification_ids", [r.notification.id for r in recordings]
                )
        self._cache_created(processing_event)
        return recordings

    def _cache_created(self, processing_event: ProcessingEvent[Any]) -> None:
        """Put aggregates this commit created into the cache (a copy: the caller keeps its own).

        In fast-forward mode eventsourcing caches an aggregate only when it is
        first loaded, so the first load after a create rebuilt it from the store
        (a room: a snapshot query, an events query, decoding); a copy now costs
        less than that rebuild.  Later commits reach the cached copy by fast-forward.
        """
        cache = self.repository.cache
        if cache is None:
            return
        for event in processing_event.events:
            aggregate = processing_event.aggregates.get(event.originator_id)
            if aggregate is not None and event.originator_version == getattr(
                aggregate, "INITIAL_VERSION", 1
            ):
                cache.put(event.originator_id, copy.deepcopy(aggregate))

    def cached(self, aggregate_id: UUID) -> Any | None:
        """The aggregate the repository's cache holds, as it is (no load, no copy), or None.

        For a peek only: the version it holds is the one last loaded or created;
        `repository.get` copies it and brings it up to date.
        """
        cache = self.repository.cache
        if cache is None:
            return None
        try:
            return cache.get(aggregate_id)
        except KeyError:
            return None

    def add_commit_listener(self, listener: CommitListener) -> None:
        """Call `listener` (from the committing thread) after every commit, with what it wrote."""
        with self._listeners_lock:
            self._listeners.append(listener)

    def _notify(self, recordings: list[Recording[Any]]) -> None:
        super()._notify(recordings)
        if recordings:
            mark = COMMIT_MARK.get()
            if mark is not None:
                mark.raise_to(max(r.notification.id for r in recordings))
            notifications = [r.notification for r in recordings]
            for listener in list(self._listeners):
                listener(notifications)

    def save(self, *objs: Any, **kwargs: Any) -> list[Recording[Any]]:
        """Save aggregates (`Application.save`, without its Protocol checks: see `save_tracked`)."""
        if kwargs or not all(obj is None or isinstance(obj, Aggregate) for obj in objs):
            return super().save(*objs, **kwargs)  # domain events, or save options
        return self._save_aggregates(objs, None)

    def save_tracked(self, *objs: Any, tracking: Tracking) -> list[Recording[Any]]:
        """Save aggregates and record `tracking` in one transaction."""
        return self._save_aggregates(objs, tracking)

    def _save_aggregates(
        self, aggregates: Sequence[Any], tracking: Tracking | None
    ) -> list[Recording[Any]]:
        processing_event: ProcessingEvent[Any] = ProcessingEvent(tracking)
        # `ProcessingEvent.collect_events` asks two runtime-checkable Protocols about
        # every object (about a fifth of the rooms consumer's time per event, and 4 %
        # of a create's in the rooms service); these are aggregates, so their events
        # are collected directly.
        for aggregate in aggregates:
            if aggregate is None:
                continue
            processing_event.events.extend(aggregate.collect_events())
            processing_event.aggregates[aggregate.id] = aggregate
        recordings = self._record(processing_event)
        self._take_snapshots(processing_event)
        self._notify(recordings)
        return recordings

    def position_of(self, name: str) -> int | None:
        """The last position recorded under a tracking name (a consumer's stream sequence)."""
        return self.process_recorder.max_tracking_id(name)

    def process_batch(self, batch: Sequence[Consumed], tracking: Tracking, apply: Apply) -> None:
        """Apply consumed events in order and save everything with `tracking`, atomically.

        A concurrent writer of one of the aggregates (a command), or an aggregate
        presumed new that existed (`UnitOfWork.get_for_create`), makes the save
        fail on its version; the whole batch is then applied again to fresh state.
        """

        attempts = 0

        def attempt() -> None:
            nonlocal attempts
            attempts += 1
            uow = UnitOfWork(self, presume_new=attempts == 1)
            for consumed in batch:
                apply(uow, consumed)
            self.save_tracked(*uow.aggregates(), tracking=tracking)

        self.retry_on_conflict(attempt)


def make_lease(settings: RuntimeSettings, service: str, name: str) -> Lease:
    """The lease electing one replica to run a service's follower `name`."""
    import os

    if settings.store == "postgres":
        env = dict(os.environ)
        schema = postgres_schema(settings, service, env)
        return PostgresLease(service_dsn(settings, service, env), f"{schema}:{name}")
    return FileLease(Path(settings.data_dir) / service / "leases" / f"{name}.lock")


def create_tables(metadata: sa.MetaData, engine: sa.Engine) -> None:
    """Create a read model's tables if missing, safely when replicas start together.

    Concurrent `CREATE TABLE`s for the same name collide in PostgreSQL's catalog;
    a transaction-scoped advisory lock makes the replicas take turns.
    """
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(7343219)"))
        metadata.create_all(conn)


def construct_application(factory: Callable[[], T], attempts: int = 5) -> T:
    """Build an Application (it creates its tables), retrying a lost catalog race.

    eventsourcing's `CREATE TABLE IF NOT EXISTS` can still collide when replicas
    start at the same instant; the loser simply tries again.
    """
    import time

    for attempt in range(attempts):
        try:
            return factory()
        except Exception:
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")
