"""CPU of the local media backend's test pattern, per encoding (what a recording costs).

Encodes a few seconds of each preset (and the old 320x240 at 15 fps for
comparison) as fast as possible and prints the CPU time per second of media,
i.e. the share of one core a real-time recording takes.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from services.recordings.media_local import MediaSpec, generate_test_recording, probe

SECONDS = 4.0
ENCODINGS = [
    {
        "video": {
            "width": 320,
            "height": 240,
            "framerate": 15,
            "codec": "H264_BASELINE",
            "bitrate": 500,
            "keyFrameInterval": 1,
            "depth": 24,
        },
        "audio": {"codec": "AAC", "bitrate": 64, "frequency": 16000},
    },
    "H264_720P_30",
    "H264_720P_60",
    "H264_1080P_30",
    "H264_1080P_60",
]


def main() -> None:
    print(f"{'encoding':<24} {'core %':>7} {'kbit/s':>8}  produced")
    for encoding in ENCODINGS:
        spec = MediaSpec.from_encoding(encoding)
        started = time.process_time()
        data = b"".join(generate_test_recording(SECONDS, spec))
        cpu = time.process_time() - started
        media = probe(data)
        name = (
            encoding
            if isinstance(encoding, str)
            else f"{spec.width}x{spec.height}@{spec.framerate}"
        )
        print(
            f"{name:<24} {100 * cpu / SECONDS:>6.0f}% {len(data) * 8 / SECONDS / 1000:>8.0f}  "
            f"{media.width}x{media.height} {media.framerate:.0f} fps {media.profile} {media.audio_codec}"
        )


if __name__ == "__main__":
    main()
