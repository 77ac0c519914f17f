"""A service process exempts its start-up objects from the collector's full passes."""

from __future__ import annotations

import gc
import time

from services.runtime.heap import freeze_startup_heap


def test_a_full_collection_no_longer_walks_the_frozen_heap() -> None:
    ballast = [[i] for i in range(200_000)]  # long-lived, like imported modules
    try:
        started = time.process_time()
        gc.collect()
        walked = time.process_time() - started
        freeze_startup_heap()
        assert gc.get_freeze_count() >= len(ballast)
        started = time.process_time()
        gc.collect()
        assert time.process_time() - started < walked / 2
    finally:
        gc.unfreeze()
        del ballast
