"""A local nats-server counts as started only when its own log says it is ready.

Two servers on one port: the second fails to bind and exits within milliseconds, yet
a connect to the port succeeds (against the first).  Waiting for the port alone
called that second server started, and a client of "it" talked to the first one, or,
when the holder was not NATS at all, retried its connect until the test timed out.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from services.runtime.natsserver import NatsServer, ServerExited
from tests.support.infra import free_port


def test_a_server_whose_port_is_held_by_another_is_not_started(tmp_path: Path) -> None:
    port = free_port()
    holder = NatsServer(tmp_path / "holder", port)
    holder.start()
    try:
        second = NatsServer(tmp_path / "second", port)
        with pytest.raises(ServerExited, match="address already in use"):
            second.start()
        assert second.process is None
    finally:
        holder.stop()


def test_a_restart_does_not_take_the_last_run_for_readiness(tmp_path: Path) -> None:
    """The log is appended to: the previous run's "Server is ready" must not count."""
    port = free_port()
    server = NatsServer(tmp_path / "nats", port)
    server.start()
    server.stop()
    assert "Server is ready" in server.log_path.read_text()
    holder = NatsServer(tmp_path / "holder", port)
    holder.start()
    try:
        with pytest.raises(ServerExited, match="address already in use"):
            server.start()
    finally:
        holder.stop()
