"""A real, playable recording for the `local` media backend: a test pattern with a tone.

Encoded with PyAV (its wheels carry FFmpeg) into fragmented MP4, which can be
streamed as it is produced: chunks are yielded while encoding goes on, so a
recording is uploaded while it is being "recorded".

The file is what the recording's `encoding` says: the preset's (or the custom
options') resolution, frame rate, H.264 profile, key-frame interval, bitrate
ceiling and audio codec.  The pattern is colour bars with one moving block, so
the encoder has little to do: 1280x720 at 30 fps costs about 15% of one
core (`bench/local_recording.py`).  What MP4 cannot carry (VP8) or what is
too costly for a test pattern is replaced, and `MediaSpec.encoding()` then
labels what is actually produced.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any

import av
import numpy as np

# OpenVidu Meet's presets: (width, height, fps, video kbps); all H.264 Main + Opus.
PRESETS: dict[str, tuple[int, int, int, int]] = {
    "H264_720P_30": (1280, 720, 30, 3000),
    "H264_720P_60": (1280, 720, 60, 4500),
    "H264_1080P_30": (1920, 1080, 30, 4500),
    "H264_1080P_60": (1920, 1080, 60, 6000),
    "PORTRAIT_H264_720P_30": (720, 1280, 30, 3000),
    "PORTRAIT_H264_720P_60": (720, 1280, 60, 4500),
    "PORTRAIT_H264_1080P_30": (1080, 1920, 30, 4500),
    "PORTRAIT_H264_1080P_60": (1080, 1920, 60, 6000),
}
DEFAULT_PRESET = "H264_720P_30"
# The most a test pattern may cost: the largest preset's pixel rate.
MAX_PIXEL_RATE = 1920 * 1080 * 60
PROFILES = {"H264_BASELINE": "baseline", "H264_MAIN": "main", "H264_HIGH": "high"}
AUDIO = {"OPUS": ("libopus", 48000), "AAC": ("aac", None), "AC_MP3": ("libmp3lame", None)}


@dataclass(frozen=True)
class MediaSpec:
    """What the local backend encodes; `preset` is set while it matches a preset exactly."""

    width: int = 1280
    height: int = 720
    framerate: int = 30
    codec: str = "H264_MAIN"
    bitrate: int = 3000
    key_frame_interval: float = 4.0
    audio_codec: str = "OPUS"
    audio_bitrate: int = 128
    frequency: int = 48000
    preset: str | None = DEFAULT_PRESET

    @classmethod
    def from_encoding(cls, encoding: Any) -> MediaSpec:
        """The spec for a preset name or custom options, adjusted to what can be produced."""
        if encoding is None or isinstance(encoding, str):
            name = encoding if encoding in PRESETS else DEFAULT_PRESET
            width, height, fps, kbps = PRESETS[name]
            return cls(width, height, fps, bitrate=kbps, preset=name)
        video, audio = encoding.get("video") or {}, encoding.get("audio") or {}
        codec = str(video.get("codec", "H264_MAIN"))
        audio_codec = str(audio.get("codec", "OPUS"))
        spec = cls(
            width=int(video.get("width", 1280)),
            height=int(video.get("height", 720)),
            framerate=int(video.get("framerate", 30)),
            codec=codec if codec in PROFILES else "H264_MAIN",  # VP8 does not fit in MP4
            bitrate=int(video.get("bitrate", 3000)),
            key_frame_interval=video.get("keyFrameInterval", 4),
            audio_codec=audio_codec if audio_codec in AUDIO else "OPUS",
            audio_bitrate=int(audio.get("bitrate", 128)),
            frequency=int(audio.get("frequency", 48000)),
            preset=None,
        )
        return spec._producible()

    def _producible(self) -> MediaSpec:
        # Even dimensions (4:2:0), a pixel rate a test pattern can afford, the
        # sample rate the audio encoder takes.
        spec = self
        rate = spec.width * spec.height * spec.framerate
        if rate > MAX_PIXEL_RATE:
            scale = math.sqrt(MAX_PIXEL_RATE / rate)
            spec = replace(spec, width=int(spec.width * scale), height=int(spec.height * scale))
        width, height = max(16, spec.width - spec.width % 2), max(16, spec.height - spec.height % 2)
        spec = replace(spec, width=width, height=height)
        fixed_rate = AUDIO[spec.audio_codec][1]
        if fixed_rate is not None:
            spec = replace(spec, frequency=fixed_rate)
        elif spec.frequency not in (8000, 16000, 22050, 24000, 32000, 44100, 48000):
            spec = replace(spec, frequency=48000)
        return spec

    def encoding(self) -> str | dict[str, Any]:
        """The recording's `encoding` label: the preset, or the options produced."""
        if self.preset is not None:
            return self.preset
        return {
            "video": {
                "width": self.width,
                "height": self.height,
                "framerate": self.framerate,
                "codec": self.codec,
                "bitrate": self.bitrate,
                "keyFrameInterval": self.key_frame_interval,
                "depth": 24,
            },
            "audio": {
                "codec": self.audio_codec,
                "bitrate": self.audio_bitrate,
                "frequency": self.frequency,
            },
        }


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


def _video_stream(container: Any, spec: MediaSpec) -> Any:
    video = container.add_stream("libx264", rate=spec.framerate)
    video.width, video.height, video.pix_fmt = spec.width, spec.height, "yuv420p"
    keyint = max(1, round(spec.key_frame_interval * spec.framerate))
    # ultrafast + zerolatency keeps the cost low; CABAC (and 8x8 DCT for High) give
    # the profile the label names.  CRF with a VBV ceiling: the bitrate is a maximum.
    features = {"baseline": "", "main": "cabac=1:", "high": "cabac=1:8x8dct=1:"}
    profile = PROFILES[spec.codec]
    video.options = {
        "preset": "ultrafast",
        "tune": "zerolatency",
        "threads": "1",
        "profile": profile,
        "x264-params": f"{features[profile]}keyint={keyint}:min-keyint={keyint}",
        "crf": "23",
        "maxrate": f"{spec.bitrate}k",
        "bufsize": f"{spec.bitrate * 2}k",
    }
    return video


def _audio_stream(container: Any, spec: MediaSpec) -> Any:
    codec, _ = AUDIO[spec.audio_codec]
    audio = container.add_stream(codec, rate=spec.frequency)
    audio.layout = "stereo"
    audio.bit_rate = spec.audio_bitrate * 1000
    return audio


class _Pattern:
    """Colour bars (built once) with a white block sliding along the bottom."""

    BARS = (
        (235, 128, 128),
        (210, 16, 146),
        (170, 166, 16),
        (145, 54, 34),
        (106, 202, 222),
        (81, 90, 240),
        (41, 240, 110),
        (16, 128, 128),
    )

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        columns = np.minimum(np.arange(width) * len(self.BARS) // width, len(self.BARS) - 1)
        bars = np.array(self.BARS, dtype=np.uint8)
        self.y = np.repeat(bars[columns, 0][None, :], height, axis=0)
        half = columns[::2][: width // 2]
        self.u = np.ascontiguousarray(np.repeat(bars[half, 1][None, :], height // 2, axis=0))
        self.v = np.ascontiguousarray(np.repeat(bars[half, 2][None, :], height // 2, axis=0))
        self.block = max(2, width // 8)

    def frame(self, index: int) -> av.VideoFrame:
        y = self.y.copy()
        x = (index * max(1, self.width // 160)) % max(1, self.width - self.block)
        y[self.height - self.height // 6 :, x : x + self.block] = 255
        frame = av.VideoFrame(self.width, self.height, "yuv420p")
        for plane, data in zip(frame.planes, (y, self.u, self.v), strict=True):
            if plane.line_size == data.shape[1]:
                plane.update(data.tobytes())
            else:  # the plane has row padding
                padded = np.zeros((data.shape[0], plane.line_size), dtype=np.uint8)
                padded[:, : data.shape[1]] = data
                plane.update(padded.tobytes())
        return frame


def generate_test_recording(
    duration_s: float,
    spec: MediaSpec | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> Iterator[bytes]:
    """Yield an MP4 test pattern with a tone, chunk by chunk; stops early if asked."""
    spec = spec or MediaSpec()
    sink = _Sink()
    container = av.open(
        sink,
        mode="w",
        format="mp4",
        options={"movflags": "frag_keyframe+empty_moov+default_base_moof"},
    )
    video = _video_stream(container, spec)
    audio = _audio_stream(container, spec)
    pattern = _Pattern(spec.width, spec.height)
    frames = max(1, int(duration_s * spec.framerate))
    rate = spec.frequency
    sent = 0  # audio samples so far
    for index in range(frames):
        if should_stop():
            break
        frame = pattern.frame(index)
        frame.pts = index
        for packet in video.encode(frame):
            container.mux(packet)
        due = (index + 1) * rate // spec.framerate
        t = np.arange(sent, due) / rate
        tone = (0.2 * np.sin(2 * math.pi * 440 * t) * 32767).astype(np.int16)
        # Packed stereo: left and right samples interleaved.
        sound = av.AudioFrame.from_ndarray(
            np.repeat(tone, 2)[None, :], format="s16", layout="stereo"
        )
        sound.sample_rate = rate
        sound.pts = sent
        sound.time_base = Fraction(1, rate)
        sent = due
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


@dataclass(frozen=True)
class Probe:
    """What a media file actually contains."""

    duration: float
    width: int
    height: int
    framerate: float
    video_codec: str
    profile: str
    audio_codec: str
    sample_rate: int


def probe(data: bytes) -> Probe:
    """Decode a media file's video to measure it (checks that it is playable)."""
    with av.open(io.BytesIO(data), mode="r") as container:
        stream = container.streams.video[0]
        sound = container.streams.audio[0]
        frames = sum(1 for _ in container.decode(stream))  # type: ignore[misc,union-attr,unused-ignore]
        rate = float(stream.average_rate or stream.guessed_rate or 1)
        return Probe(
            duration=frames / rate,
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            framerate=rate,
            video_codec=stream.codec_context.name,
            profile=str(stream.codec_context.profile),
            audio_codec=sound.codec_context.name,
            sample_rate=sound.codec_context.sample_rate,
        )


def probe_duration(data: bytes) -> float:
    """Duration in seconds of a media file (checks that it is playable)."""
    return probe(data).duration
