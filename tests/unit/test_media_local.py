"""The local media backend produces a real, playable file that is what its label says."""

from __future__ import annotations

from typing import Any

import pytest

from services.recordings.media_local import MediaSpec, generate_test_recording, probe

SMALL = MediaSpec.from_encoding(
    {
        "video": {
            "width": 320,
            "height": 240,
            "framerate": 15,
            "codec": "H264_MAIN",
            "bitrate": 500,
            "keyFrameInterval": 1,
            "depth": 24,
        },
        "audio": {"codec": "AAC", "bitrate": 64, "frequency": 44100},
    }
)


def test_generated_recording_is_playable_with_the_requested_duration() -> None:
    data = b"".join(generate_test_recording(3.0, SMALL))
    assert data[4:8] == b"ftyp"
    assert abs(probe(data).duration - 3.0) < 0.3


@pytest.mark.parametrize(
    ("encoding", "expected"),
    [
        ("H264_720P_30", (1280, 720, 30, "Main", "opus")),
        ("PORTRAIT_H264_720P_30", (720, 1280, 30, "Main", "opus")),
        (None, (1280, 720, 30, "Main", "opus")),
    ],
)
def test_presets_produce_what_they_say(encoding: Any, expected: tuple[Any, ...]) -> None:
    spec = MediaSpec.from_encoding(encoding)
    assert spec.encoding() == (encoding or "H264_720P_30")
    media = probe(b"".join(generate_test_recording(1.0, spec)))
    assert (media.width, media.height, round(media.framerate), media.profile) == expected[:4]
    assert media.video_codec == "h264" and media.audio_codec == expected[4]


def test_custom_encoding_is_produced_and_labelled_as_produced() -> None:
    asked = {
        "video": {
            "width": 641,
            "height": 361,
            "framerate": 20,
            "codec": "VP8",
            "bitrate": 800,
            "keyFrameInterval": 2,
            "depth": 24,
        },
        "audio": {"codec": "OPUS", "bitrate": 96, "frequency": 44100},
    }
    spec = MediaSpec.from_encoding(asked)
    label = spec.encoding()
    assert isinstance(label, dict)
    # MP4 cannot carry VP8, dimensions must be even, Opus runs at 48 kHz: the label says so.
    assert label["video"] | {} == {
        "width": 640,
        "height": 360,
        "framerate": 20,
        "codec": "H264_MAIN",
        "bitrate": 800,
        "keyFrameInterval": 2,
        "depth": 24,
    }
    assert label["audio"] == {"codec": "OPUS", "bitrate": 96, "frequency": 48000}
    media = probe(b"".join(generate_test_recording(1.0, spec)))
    assert (media.width, media.height, round(media.framerate)) == (640, 360, 20)
    assert (media.profile, media.sample_rate) == ("Main", 48000)


def test_chunks_are_yielded_before_encoding_finishes() -> None:
    frames = {"n": 0}

    def count() -> bool:
        frames["n"] += 1
        return False

    chunks = generate_test_recording(3.0, SMALL, should_stop=count)
    first = next(chunks)
    assert first and frames["n"] < 45  # 3 s at 15 fps: the first chunk came early
    rest = b"".join(chunks)
    assert abs(probe(first + rest).duration - 3.0) < 0.3


def test_stopping_early_still_gives_a_playable_file() -> None:
    frames = {"n": 0}

    def stop_after_one_second() -> bool:
        frames["n"] += 1
        return frames["n"] > 15

    data = b"".join(generate_test_recording(60.0, SMALL, should_stop=stop_after_one_second))
    assert 0.8 < probe(data).duration < 1.3
