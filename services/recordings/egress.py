"""The recordings side of the media backend: start and stop egress.

`LocalEgress` (embedded default, no LiveKit) records a real playable test
pattern in real time and streams it into object storage as it is produced,
until stopped; it routes no media.  `LiveKitEgress` asks LiveKit for a
room-composite egress uploading to the same bucket; LiveKit's egress webhooks
then drive the state machine.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from livekit import api

from services.recordings.media_local import generate_test_recording
from services.recordings.storage import ObjectStorage
from services.runtime.logging import get_logger
from services.runtime.settings import RuntimeSettings

log = get_logger("meetplane.egress")

# (recording_id, size or None, duration seconds, error or None)
Finished = Callable[[str, int | None, float, str | None], None]


class Egress(Protocol):
    """Start/stop recording a room."""

    async def start(
        self, recording_id: str, room_id: str, object_key: str, layout: str, encoding: Any
    ) -> str:
        """Begin; returns an egress id."""
        ...

    async def stop(self, recording_id: str) -> None:
        """Ask the egress to finish the file."""
        ...


class LocalEgress:
    """Real-time test-pattern recorder streaming into S3 (no media routing)."""

    def __init__(
        self, storage: ObjectStorage, finished: Finished, max_seconds: float = 3600.0
    ) -> None:
        self.storage = storage
        self.finished = finished
        self.max_seconds = max_seconds
        self._stops: dict[str, threading.Event] = {}

    async def start(
        self, recording_id: str, room_id: str, object_key: str, layout: str, encoding: Any
    ) -> str:
        """Record in a background thread until `stop`."""
        stop = threading.Event()
        self._stops[recording_id] = stop
        threading.Thread(
            target=self._record,
            args=(recording_id, object_key, stop),
            daemon=True,
            name=f"egress-{recording_id}",
        ).start()
        return f"local-{recording_id}"

    def _record(self, recording_id: str, object_key: str, stop: threading.Event) -> None:
        started = time.monotonic()
        fps = 15
        frame = {"n": 0}

        def should_stop() -> bool:
            # Real time: frame n is due at n / fps seconds.
            due = started + frame["n"] / fps
            frame["n"] += 1
            delay = due - time.monotonic()
            if delay > 0 and stop.wait(delay):
                return True
            return stop.is_set()

        try:
            chunks = generate_test_recording(self.max_seconds, fps=fps, should_stop=should_stop)
            size = self.storage.put_stream(object_key, chunks, "video/mp4")
            duration = round(time.monotonic() - started, 3)
            self.finished(recording_id, size, duration, None)
        except Exception as exc:
            log.exception("egress.local_failed", recording_id=recording_id)
            self.finished(recording_id, None, 0.0, f"local egress failed: {exc}")
        finally:
            self._stops.pop(recording_id, None)

    async def stop(self, recording_id: str) -> None:
        """Finish the file (a no-op for a recording this process does not run)."""
        stop = self._stops.get(recording_id)
        if stop is not None:
            stop.set()


class LiveKitEgress:
    """Room-composite egress with S3 upload through the `livekit-api` SDK."""

    def __init__(self, settings: RuntimeSettings, storage: ObjectStorage) -> None:
        self.settings = settings
        self.storage = storage
        self._egress_ids: dict[str, str] = {}

    def _client(self) -> api.LiveKitAPI:
        url = self.settings.livekit_url.replace("wss://", "https://").replace("ws://", "http://")
        return api.LiveKitAPI(url, self.settings.livekit_api_key, self.settings.livekit_api_secret)

    async def start(
        self, recording_id: str, room_id: str, object_key: str, layout: str, encoding: Any
    ) -> str:
        """StartRoomCompositeEgress uploading to the recordings bucket."""
        s3 = self.storage.settings
        request = api.RoomCompositeEgressRequest(
            room_name=room_id,
            layout=layout,
            file_outputs=[
                api.EncodedFileOutput(
                    filepath=object_key,
                    s3=api.S3Upload(
                        access_key=s3.access_key,
                        secret=s3.secret_key,
                        bucket=s3.bucket,
                        endpoint=("https://" if s3.secure else "http://") + s3.endpoint,
                        region=s3.region,
                        force_path_style=True,
                    ),
                )
            ],
        )
        if isinstance(encoding, str):
            request.preset = api.EncodingOptionsPreset.Value(encoding)  # type: ignore[assignment]
        client = self._client()
        try:
            info = await client.egress.start_room_composite_egress(request)
        finally:
            await client.aclose()
        self._egress_ids[recording_id] = info.egress_id
        return str(info.egress_id)

    async def stop(self, recording_id: str) -> None:
        """StopEgress (the egress_ended webhook completes the recording)."""
        egress_id = self._egress_ids.get(recording_id)
        if egress_id is None:
            return
        client = self._client()
        try:
            await client.egress.stop_egress(api.StopEgressRequest(egress_id=egress_id))
        finally:
            await client.aclose()
