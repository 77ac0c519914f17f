"""Which position a command committed up to: the write side of read-your-writes.

The command dispatcher sets a fresh `CommitMark` before running a handler;
every commit the handler makes (on the loop, or in a worker thread:
`asyncio.to_thread` copies the context, and the mark object is shared) raises
it.  When the handler returns, the dispatcher waits until the outbox has published up to the mark
before it replies, so the caller's next command finds the events on the stream.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass


@dataclass
class CommitMark:
    """The highest notification id committed while it was current."""

    position: int = 0

    def raise_to(self, position: int) -> None:
        """Record a commit."""
        self.position = max(self.position, position)


COMMIT_MARK: contextvars.ContextVar[CommitMark | None] = contextvars.ContextVar(
    "meetplane_commit_mark", default=None
)
