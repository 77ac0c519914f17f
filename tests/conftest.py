"""Session-wide fixtures: real NATS per test, stores on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import structlog
from faststream.nats import NatsBroker

from services.runtime.nats import connect, ensure_stream
from services.runtime.settings import RuntimeSettings
from tests.support.infra import NatsHandle, drop_schemas, local_nats, postgres_dsn, schema_prefix


def pytest_configure(config: pytest.Config) -> None:
    """Log exceptions as the services do: a plain traceback, not rich's.

    structlog's default renders a traceback with rich, every frame's locals
    included, synchronously on the event loop: tens of milliseconds warm, and
    the first one in a process, importing rich and pygments on a loaded machine,
    held a test's own command reply past its caller's timeout. No logger is
    cached, so `structlog.testing.capture_logs` still works.
    """
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.dev.ConsoleRenderer(
                colors=False, exception_formatter=structlog.dev.plain_traceback
            ),
        ]
    )


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsHandle]:
    """A fresh NATS server with JetStream for one test."""
    handle = NatsHandle(tmp_path / "nats")
    yield handle
    handle.stop()


@pytest.fixture
def nats_binary(tmp_path: Path) -> Iterator[NatsHandle]:
    """A NATS from the local binary, never the session's container (restarts, kills)."""
    handle = local_nats(tmp_path / "nats")
    yield handle
    handle.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """Store settings: every test using it runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        yield {"store": "sqlite"}
        return
    dsn = postgres_dsn()
    if dsn is None:
        pytest.skip("no PostgreSQL server answers at MEETPLANE_TEST_POSTGRES_DSN")
    prefix = schema_prefix()
    yield {"store": "postgres", "postgres_dsn": dsn, "postgres_schema_prefix": prefix}
    drop_schemas(dsn, prefix)


@pytest.fixture
async def settings_factory(
    nats_server: NatsHandle, tmp_path: Path
) -> AsyncIterator[type[RuntimeSettings] | object]:
    """Build settings of any service class pointed at this test's NATS and data dir."""
    nc = await connect(RuntimeSettings(nats_url=nats_server.url), "test-setup")
    await ensure_stream(nc)
    await nc.close()

    def make(cls: type[RuntimeSettings] = RuntimeSettings, **overrides: object) -> RuntimeSettings:
        values: dict[str, object] = {
            "nats_url": nats_server.url,
            "data_dir": tmp_path / "data",
            **overrides,
        }
        return cls(**values)  # type: ignore[arg-type]

    yield make


@pytest.fixture
async def client_broker(nats_server: NatsHandle) -> AsyncIterator[NatsBroker]:
    """A connected broker for sending commands from tests."""
    from services.runtime.nats import make_broker

    broker = make_broker(RuntimeSettings(nats_url=nats_server.url), "test-client")
    await broker.connect()
    yield broker
    await broker.stop()
