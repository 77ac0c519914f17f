"""The recordings side of the media backend: start and stop egress.

`LocalEgress` (embedded default, no LiveKit) records a real playable test
pattern in real time and streams it into object storage as it is produced,
until stopped; it routes no media.  `LiveKitEgress` asks LiveKit for a
room-composite egress uploading to the same bucket; LiveKit's egress webhooks
then drive the state machine.

A stop names the egress id stored on the recording, so any replica (or the
same one after a restart) can stop what another started.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from livekit import api
from livekit.api.twirp_client import ServerError

from services.recordings.media_local import MediaSpec, generate_test_recording
from services.recordings.storage import ObjectStorage
from services.runtime.logging import get_logger
from services.runtime.settings import RuntimeSettings
from services.runtime.telemetry import external_call

log = get_logger("meetplane.egress")

# (recording_id, size or None, duration seconds, error or None, limit reached)
Finished = Callable[[str, int | None, float, str | None, bool], None]


class Egress(Protocol):
    """Start/stop recording a room."""

    def effective_encoding(self, encoding: Any) -> Any:
        """The encoding the produced file will have (the recording's label)."""
        ...

    async def start(
        self, recording_id: str, room_id: str, object_key: str, layout: str, encoding: Any
    ) -> str:
        """Begin; returns an egress id."""
        ...

    async def stop(self, recording_id: str, egress_id: str | None) -> None:
        """Ask the egress to finish the file (idempotent: an ended egress is stopped)."""
        ...

    def close(self) -> None:
        """The service is stopping: finish what runs in this process, before the store closes."""
        ...


class LocalEgress:
    """Real-time test-pattern recorder streaming into S3 (no media routing).

    A recording runs in a thread of the process that started it; a stop that
    reaches another replica finds no thread and does nothing, and the
    recordings service's reconciler fails a recording whose process is gone.
    """

    def __init__(
        self, storage: ObjectStorage, finished: Finished, max_seconds: float = 3600.0
    ) -> None:
        self.storage = storage
        self.finished = finished
        self.max_seconds = max_seconds
        self._stops: dict[str, threading.Event] = {}
        self._threads: dict[str, threading.Thread] = {}

    def effective_encoding(self, encoding: Any) -> Any:
        """What the test pattern is encoded as (see `MediaSpec`)."""
        return MediaSpec.from_encoding(encoding).encoding()

    async def start(
        self, recording_id: str, room_id: str, object_key: str, layout: str, encoding: Any
    ) -> str:
        """Record in a background thread until `stop`."""
        stop = threading.Event()
        self._stops[recording_id] = stop
        thread = threading.Thread(
            target=self._record,
            args=(recording_id, object_key, MediaSpec.from_encoding(encoding), stop),
            daemon=True,
            name=f"egress-{recording_id}",
        )
        self._threads[recording_id] = thread
        thread.start()
        return f"local-{recording_id}"

    def _record(
        self, recording_id: str, object_key: str, spec: MediaSpec, stop: threading.Event
    ) -> None:
        started = time.monotonic()
        frames = {"due": 0, "encoded": 0}

        def should_stop() -> bool:
            # Real time: frame n is due at n / fps seconds.
            due = started + frames["due"] / spec.framerate
            frames["due"] += 1
            delay = due - time.monotonic()
            if (delay > 0 and stop.wait(delay)) or stop.is_set():
                return True
            frames["encoded"] += 1
            return False

        try:
            chunks = generate_test_recording(self.max_seconds, spec, should_stop=should_stop)
            size = self.storage.put_stream(object_key, chunks, "video/mp4")
            # The file's duration: every frame is in it, so a starved encoder makes less
            # media than wall-clock time, and the metadata says what the file holds.
            duration = round(frames["encoded"] / spec.framerate, 3)
            limit = not stop.is_set()  # it ran to the maximum length
            self.finished(recording_id, size, duration, None, limit)
        except Exception as exc:
            log.exception("egress.local_failed", recording_id=recording_id)
            self.finished(recording_id, None, 0.0, f"local egress failed: {exc}", False)
        finally:
            self._stops.pop(recording_id, None)
            self._threads.pop(recording_id, None)

    async def stop(self, recording_id: str, egress_id: str | None) -> None:
        """Finish the file (a no-op for a recording this process does not run)."""
        stop = self._stops.get(recording_id)
        if stop is not None:
            stop.set()

    def close(self, timeout: float = 10.0) -> None:
        """Stop every recording of this process and wait for their files and records.

        A recording still running when the store closes could not record its end;
        stopped here, it is kept (a shorter file) like a stop through the API.
        """
        for stop in list(self._stops.values()):
            stop.set()
        deadline = time.monotonic() + timeout
        for thread in list(self._threads.values()):
            thread.join(max(0.0, deadline - time.monotonic()))


def livekit_encoding(encoding: Any) -> tuple[str, Any]:
    """OpenVidu's encoding as LiveKit's: ("preset", enum value) or ("advanced", options)."""
    if encoding is None or isinstance(encoding, str):
        return "preset", api.EncodingOptionsPreset.Value(encoding or "H264_720P_30")
    video, audio = encoding.get("video") or {}, encoding.get("audio") or {}
    return "advanced", api.EncodingOptions(
        width=int(video.get("width", 0)),
        height=int(video.get("height", 0)),
        depth=int(video.get("depth", 24)),
        framerate=int(video.get("framerate", 0)),
        video_codec=str(video.get("codec", "DEFAULT_VC")),
        video_bitrate=int(video.get("bitrate", 0)),
        key_frame_interval=float(video.get("keyFrameInterval", 0)),
        audio_codec=str(audio.get("codec", "DEFAULT_AC")),
        audio_bitrate=int(audio.get("bitrate", 0)),
        audio_frequency=int(audio.get("frequency", 0)),
    )


def _already_stopped(exc: Exception) -> bool:
    return isinstance(exc, ServerError) and exc.code in ("not_found", "failed_precondition")


class LiveKitEgress:
    """Room-composite egress with S3 upload through the `livekit-api` SDK."""

    def __init__(self, settings: RuntimeSettings, storage: ObjectStorage) -> None:
        self.settings = settings
        self.storage = storage

    def effective_encoding(self, encoding: Any) -> Any:
        """LiveKit produces what it is asked for."""
        return encoding

    def _client(self) -> api.LiveKitAPI:
        url = self.settings.livekit_url.replace("wss://", "https://").replace("ws://", "http://")
        return api.LiveKitAPI(url, self.settings.livekit_api_key, self.settings.livekit_api_secret)

    async def start(
        self, recording_id: str, room_id: str, object_key: str, layout: str, encoding: Any
    ) -> str:
        """StartRoomCompositeEgress uploading to the recordings bucket."""
        s3 = self.storage.settings
        kind, options = livekit_encoding(encoding)
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
            **{kind: options},
        )
        client = self._client()
        try:
            with external_call("livekit", "start_egress"):
                info = await client.egress.start_room_composite_egress(request)
        finally:
            await client.aclose()
        return str(info.egress_id)

    async def stop(self, recording_id: str, egress_id: str | None) -> None:
        """StopEgress of the recording's stored egress (egress_ended then completes it)."""
        if not egress_id:
            log.warning("egress.stop_without_id", recording_id=recording_id)
            return
        client = self._client()
        try:
            with external_call("livekit", "stop_egress", _already_stopped):
                await client.egress.stop_egress(api.StopEgressRequest(egress_id=egress_id))
        except ServerError as exc:
            # An egress that already ended (or is unknown) is stopped: done.
            if exc.code not in ("not_found", "failed_precondition"):
                raise
            log.info("egress.already_stopped", recording_id=recording_id, code=exc.code)
        finally:
            await client.aclose()

    def close(self) -> None:
        """Nothing runs here: LiveKit's egress outlives this process and reports its end."""
