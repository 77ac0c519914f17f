"""The recordings service with an egress that writes an N-byte object (for bench/media.py).

No LiveKit runs here, and the local egress records in real time; this stand-in
for the media port produces a large recording at once.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from services.recordings.main import build
from services.recordings.settings import RecordingsSettings
from services.recordings.storage import ObjectStorage, StorageSettings
from services.runtime.rpc import request
from services.runtime.service import ServiceParts, run_until_signalled

SIZE = int(sys.argv[1])


class SizedEgress:
    def __init__(self, storage: ObjectStorage) -> None:
        self.storage = storage
        self.broker: Any = None
        self.keys: dict[str, str] = {}

    def effective_encoding(self, encoding: Any) -> Any:
        return encoding

    async def start(
        self, recording_id: str, room_id: str, object_key: str, layout: str, encoding: Any
    ) -> str:
        def chunks() -> Iterator[bytes]:
            block = bytes(range(256)) * 4096
            for offset in range(0, SIZE, len(block)):
                yield block[: min(len(block), SIZE - offset)]

        await asyncio.to_thread(self.storage.put_stream, object_key, chunks(), "video/mp4")
        self.keys[recording_id] = object_key
        return "sized"

    async def stop(self, recording_id: str, egress_id: str | None) -> None:
        webhook = {
            "event": "egress_ended",
            "egress": {
                "status": "EGRESS_COMPLETE",
                "file_results": [
                    {"filename": self.keys[recording_id], "size": SIZE, "duration": 1_000_000_000}
                ],
            },
        }
        asyncio.get_running_loop().create_task(
            request(self.broker, "recordings", "livekit_webhook", webhook, timeout=30)
        )


def main() -> None:
    settings = RecordingsSettings()
    storage = ObjectStorage(StorageSettings())
    egress = SizedEgress(storage)

    async def _build() -> ServiceParts:
        parts = build(settings, storage=storage, egress=egress)
        egress.broker = parts.broker
        return parts

    asyncio.run(run_until_signalled(_build, settings))


if __name__ == "__main__":
    main()
