"""Keep the garbage collector off the objects a process builds at start-up.

A service process holds about 135,000 objects once its modules are imported and
its parts built (FastAPI, faststream, SQLAlchemy, OpenTelemetry...).  CPython's
oldest-generation collection walks all of them, about 80 ms of CPU with the
whole process stalled, whenever enough new long-lived objects pile up (caches
filling: aggregates, decoded notifications).  Those start-up objects live for
the whole process, so after one collection they are moved to the permanent
generation (`gc.freeze`), which the collector never walks.
"""

from __future__ import annotations

import gc


def freeze_startup_heap() -> None:
    """Collect once, then exempt every surviving object from later collections."""
    gc.collect()
    gc.freeze()
