"""A real, playable recording for the `local` media backend: a test pattern with a tone.

Encoded with PyAV (its wheels carry FFmpeg) into fragmented MP4, which can be
streamed as it is produced: chunks are yielded while encoding goes on, so a
recording is uploaded while it is being "recorded".
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Iterator
from fractions import Fraction

import av
import numpy as np


class _Sink(io.RawIOBase):
    """Collects what the muxer writes; the generator drains it between frames."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override,unused-ignore]
        self.buffer += data
        return len(data)

    def drain(self) -> bytes:
        out = bytes(self.buffer)
        self.buffer.clear()
        return out


def generate_test_recording(
    duration_s: float,
    width: int = 320,
    height: int = 240,
    fps: int = 15,
    should_stop: Callable[[], bool] = lambda: False,
) -> Iterator[bytes]:
    """Yield an MP4 (H.264 + AAC) test pattern chunk by chunk; stops early if asked."""
    sink = _Sink()
    container = av.open(
        sink,
        mode="w",
        format="mp4",
        options={"movflags": "frag_keyframe+empty_moov+default_base_moof"},
    )
    video = container.add_stream("libx264", rate=fps)
    video.width, video.height, video.pix_fmt = width, height, "yuv420p"
    video.options = {"preset": "ultrafast", "tune": "zerolatency", "g": str(fps)}
    audio = container.add_stream("aac", rate=16000)
    audio.layout = "mono"
    frames = max(1, int(duration_s * fps))
    samples_per_frame = 16000 // fps
    xs = np.arange(width, dtype=np.uint16)
    for index in range(frames):
        if should_stop():
            break
        image = np.empty((height, width, 3), dtype=np.uint8)
        image[:, :, 0] = ((xs + index * 4) % 256).astype(np.uint8)
        image[:, :, 1] = (index * 3) % 256
        image[:, :, 2] = 128
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts = index
        for packet in video.encode(frame):
            container.mux(packet)
        t = (np.arange(samples_per_frame) + index * samples_per_frame) / 16000
        tone = (0.2 * np.sin(2 * math.pi * 440 * t) * 32767).astype(np.int16).reshape(1, -1)
        sound = av.AudioFrame.from_ndarray(tone, format="s16", layout="mono")
        sound.sample_rate = 16000
        sound.pts = index * samples_per_frame
        sound.time_base = Fraction(1, 16000)
        for packet in audio.encode(sound):
            container.mux(packet)
        chunk = sink.drain()
        if chunk:
            yield chunk
    for packet in video.encode():
        container.mux(packet)
    for packet in audio.encode():
        container.mux(packet)
    container.close()
    tail = sink.drain()
    if tail:
        yield tail


def probe_duration(data: bytes) -> float:
    """Duration in seconds of a media file (checks that it is playable)."""
    with av.open(io.BytesIO(data), mode="r") as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))  # type: ignore[misc,union-attr,unused-ignore]
        rate = float(stream.average_rate or stream.guessed_rate or 1)
        return frames / rate
