"""Child processes that cannot outlive the process that started them.

`spawn` starts a child in its own session (a terminal's Ctrl-C or hang-up goes
to the launcher alone, which then stops the children in order) and, on Linux,
asks the kernel to signal the child when its parent dies
(`prctl(PR_SET_PDEATHSIG)`): a launcher killed with SIGKILL leaves no orphan.

The death signal fires when the *thread* that forked the child ends, so
children that must die with the launcher are spawned from its main thread.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO

PR_SET_PDEATHSIG = 1

_prctl: Callable[..., int] | None = None
if sys.platform.startswith("linux"):
    # Resolved before any fork: loading libraries in a forked child is unsafe.
    _prctl = ctypes.CDLL(None, use_errno=True).prctl


def _die_with(parent_pid: int, sig: signal.Signals) -> Callable[[], None]:
    def preexec() -> None:  # runs in the child between fork and exec
        if _prctl is not None:
            _prctl(PR_SET_PDEATHSIG, int(sig))
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os.kill(os.getpid(), sig)

    return preexec


def spawn(
    argv: list[str],
    *,
    env: Mapping[str, str] | None = None,
    output: Path | None = None,
    die_with_parent: bool = True,
    death_signal: signal.Signals = signal.SIGTERM,
) -> subprocess.Popen[bytes]:
    """Start `argv` in a new session, its output appended to `output` (or discarded).

    With `die_with_parent` the child gets `death_signal` when this process dies.
    """
    sink: IO[bytes] | int = output.open("ab") if output is not None else subprocess.DEVNULL
    try:
        return subprocess.Popen(
            argv,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with(os.getpid(), death_signal) if die_with_parent else None,
        )
    finally:
        if not isinstance(sink, int):
            sink.close()


def stop_process(process: subprocess.Popen[bytes] | None, timeout: float) -> None:
    """SIGTERM a child, SIGKILL it if it is still there after `timeout`."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
