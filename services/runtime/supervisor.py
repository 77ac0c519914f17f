"""Keep a set of child processes running: restart with backoff, stop in order within a budget.

The launcher supervises nats-server, SeaweedFS and every service alike.  A
component that exits is restarted after a delay that doubles with each crash
in a row (0.5 s, 1 s, 2 s ... 30 s) and starts over once a run lasted
`STABLE_AFTER` seconds.  Stopping follows dependencies: a component gets
SIGTERM as soon as everything that needs it has exited (the gateway first, NATS
last), all within one time budget; whatever is left then is killed.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

from services.runtime.logging import get_logger

log = get_logger("meetplane.supervisor")

BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0
STABLE_AFTER = 30.0


def restart_delay(crashes: int) -> float:
    """Seconds to wait before restarting a component that crashed `crashes` times in a row."""
    return min(BACKOFF_FIRST * 2 ** max(crashes - 1, 0), BACKOFF_MAX)


@dataclass
class Supervised:
    """One supervised process: how to start it, and what happened to it so far."""

    name: str
    start_process: Callable[[], subprocess.Popen[bytes]]
    pid_path: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    exited_at: float | None = None
    crashes: int = 0
    restarts: int = 0

    def start(self) -> None:
        """Spawn the process (without waiting for it to be ready)."""
        self.process = self.start_process()
        self.started_at = time.monotonic()
        self.exited_at = None
        if self.pid_path is not None:
            self.pid_path.write_text(str(self.process.pid))

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self.process is not None and self.process.poll() is None


class Supervisor:
    """Restarts components that exit; stops them all in order."""

    def __init__(self) -> None:
        self.components: dict[str, Supervised] = {}
        self.stopping = False

    def add(self, component: Supervised) -> Supervised:
        """Supervise `component` (not started here)."""
        self.components[component.name] = component
        return component

    def down(self) -> list[str]:
        """Names of components that are not running right now."""
        return [c.name for c in self.components.values() if not c.running]

    def check(self, now: float | None = None) -> None:
        """Notice exits and restart components whose backoff has passed."""
        if self.stopping:
            return
        now = time.monotonic() if now is None else now
        for component in self.components.values():
            if component.process is None or component.running:
                continue
            if component.exited_at is None:
                component.exited_at = now
                ran = now - component.started_at
                component.crashes = 1 if ran >= STABLE_AFTER else component.crashes + 1
                log.warning(
                    "launcher.component_exited",
                    component=component.name,
                    exit_code=component.process.returncode,
                    ran_seconds=round(ran, 1),
                    restart_in=restart_delay(component.crashes),
                )
            if now - component.exited_at < restart_delay(component.crashes):
                continue
            component.restarts += 1
            component.start()
            log.warning(
                "launcher.component_restarted",
                component=component.name,
                restarts=component.restarts,
                pid=component.process.pid if component.process else None,
            )

    def stop(self, after: Mapping[str, Collection[str]], budget: float) -> None:
        """Stop every component, each once those it waits for have exited.

        `after` maps a component to the components that must be gone before it
        gets SIGTERM (the services wait for the gateway, S3 for the recordings
        service, NATS for every service).  Everything still running when
        `budget` seconds have passed is killed.
        """
        self.stopping = True
        deadline = time.monotonic() + budget
        signalled: set[str] = set()
        while True:
            gone = {name for name, c in self.components.items() if not c.running}
            for name, component in self.components.items():
                if name in signalled or name in gone:
                    continue
                if set(after.get(name, ())) & set(self.components) <= gone:
                    assert component.process is not None
                    component.process.send_signal(signal.SIGTERM)
                    signalled.add(name)
            if len(gone) == len(self.components) or time.monotonic() >= deadline:
                break
            time.sleep(0.02)
        for component in self.components.values():
            if component.running:
                assert component.process is not None
                log.warning("launcher.component_killed", component=component.name)
                component.process.kill()
            if component.process is not None:
                component.process.wait()
            if component.pid_path is not None:
                component.pid_path.unlink(missing_ok=True)
