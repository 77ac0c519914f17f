"""Check, before starting anything, that the ports `meetplane up` needs are free.

A busy port must end `up` with one line naming the port and the variable that
moves it, not a child's traceback in a log and a false "meetplane is up".
"""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass


@dataclass(frozen=True)
class PortNeed:
    """A port a component will listen on, and the variable that sets it."""

    component: str
    host: str
    port: int
    variable: str


class PortUnavailable(Exception):
    """A port `up` needs is taken (or not ours to take)."""


def _bind_error(host: str, port: int) -> OSError | None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        # As the servers themselves do: a port in TIME_WAIT counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc
    return None


def check_ports(needs: list[PortNeed]) -> None:
    """Raise `PortUnavailable` (a one-line message) for the first port we cannot use."""
    seen: dict[int, PortNeed] = {}
    for need in needs:
        other = seen.get(need.port)
        if other is not None:
            raise PortUnavailable(
                f"port {need.port} is configured for both {other.component} ({other.variable}) "
                f"and {need.component} ({need.variable}); set one of them to another port"
            )
        seen[need.port] = need
        error = _bind_error(need.host, need.port)
        if error is None:
            continue
        if error.errno == errno.EADDRINUSE:
            reason = "is already in use"
        elif error.errno == errno.EACCES:
            reason = "needs privileges this user does not have"
        else:
            reason = f"cannot be used ({error.strerror})"
        raise PortUnavailable(
            f"port {need.port} on {need.host} for {need.component} {reason}; "
            f"set {need.variable} to a free port"
        )
