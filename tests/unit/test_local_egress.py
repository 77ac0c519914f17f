"""The local egress reports the recording it actually produced, even when it falls behind."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterable
from typing import Any

from services.recordings import egress as egress_module
from services.recordings.egress import LocalEgress
from services.recordings.media_local import probe

SMALL = {
    "video": {
        "width": 320,
        "height": 240,
        "framerate": 30,
        "codec": "H264_MAIN",
        "bitrate": 500,
        "keyFrameInterval": 1,
        "depth": 24,
    },
    "audio": {"codec": "AAC", "bitrate": 64, "frequency": 44100},
}


class MemoryStorage:
    """An object store stand-in (the storage port) keeping objects in memory."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def put_stream(self, key: str, chunks: Iterable[bytes], content_type: str) -> int:
        self.objects[key] = b"".join(chunks)
        return len(self.objects[key])


async def record(storage: MemoryStorage, seconds: float) -> tuple[tuple[Any, ...], bytes]:
    done = threading.Event()
    reported: list[tuple[Any, ...]] = []

    def finished(*args: Any) -> None:
        reported.append(args)
        done.set()

    egress = LocalEgress(storage, finished, max_seconds=60)  # type: ignore[arg-type]
    assert egress.effective_encoding(SMALL) == SMALL
    await egress.start("r--EG_1--a", "r", "recordings/r/r.mp4", "grid", SMALL)
    await asyncio.sleep(seconds)  # time is the behaviour: a recording of this wall-clock length
    await egress.stop("r--EG_1--a", "local-r--EG_1--a")
    assert await asyncio.to_thread(done.wait, 30)
    return reported[0], storage.objects["recordings/r/r.mp4"]


async def test_duration_is_the_files_when_the_encoder_falls_behind(monkeypatch: Any) -> None:
    # A starved machine: at most 20 frames a second get encoded for a 30 fps recording,
    # so the file holds less media than the wall-clock time it was recording.
    real = egress_module.generate_test_recording

    def starved(seconds: float, spec: Any, should_stop: Any) -> Any:
        def slower() -> bool:
            time.sleep(0.05)  # time is the behaviour: a starved encoder, 20 frames a second
            return bool(should_stop())

        return real(seconds, spec, should_stop=slower)

    monkeypatch.setattr(egress_module, "generate_test_recording", starved)
    (recording_id, size, duration, error, limit), data = await record(MemoryStorage(), 2.0)
    media = probe(data)
    assert (recording_id, error, limit, size) == ("r--EG_1--a", None, False, len(data))
    assert media.duration < 1.6  # it did fall behind
    assert abs(duration - media.duration) < 0.1


async def test_duration_of_a_recording_that_keeps_up() -> None:
    (_, _, duration, _, _), data = await record(MemoryStorage(), 1.5)
    media = probe(data)
    assert abs(duration - media.duration) < 0.1 and 1.2 < duration < 2.0


async def test_closing_finishes_running_recordings_before_it_returns() -> None:
    """The service closes its store right after `close`: every end must be recorded by then."""
    storage = MemoryStorage()
    reported: list[tuple[Any, ...]] = []
    egress = LocalEgress(storage, lambda *args: reported.append(args), max_seconds=60)  # type: ignore[arg-type]
    for n in (1, 2):
        await egress.start(f"r--EG_{n}--a", "r", f"recordings/r/{n}.mp4", "grid", SMALL)
    await asyncio.to_thread(egress.close)
    assert sorted(args[0] for args in reported) == ["r--EG_1--a", "r--EG_2--a"]
    assert all(error is None and not limit for _, _, _, error, limit in reported)
    assert set(storage.objects) == {"recordings/r/1.mp4", "recordings/r/2.mp4"}
