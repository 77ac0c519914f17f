"""The local media backend produces a real, playable file, streamed while encoding."""

from __future__ import annotations

from services.recordings.media_local import generate_test_recording, probe_duration


def test_generated_recording_is_playable_with_the_requested_duration() -> None:
    data = b"".join(generate_test_recording(3.0))
    assert data[4:8] == b"ftyp"
    assert abs(probe_duration(data) - 3.0) < 0.3


def test_chunks_are_yielded_before_encoding_finishes() -> None:
    frames = {"n": 0}

    def count() -> bool:
        frames["n"] += 1
        return False

    chunks = generate_test_recording(3.0, should_stop=count)
    first = next(chunks)
    assert first and frames["n"] < 45  # 3 s at 15 fps: the first chunk came early
    rest = b"".join(chunks)
    assert abs(probe_duration(first + rest) - 3.0) < 0.3


def test_stopping_early_still_gives_a_playable_file() -> None:
    frames = {"n": 0}

    def stop_after_one_second() -> bool:
        frames["n"] += 1
        return frames["n"] > 15

    data = b"".join(generate_test_recording(60.0, should_stop=stop_after_one_second))
    assert 0.8 < probe_duration(data) < 1.3
