"""Thin entrypoints of the recordings service: NATS commands and consumed events."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from eventsourcing.persistence import Tracking
from faststream.nats import NatsBroker
from pydantic import BaseModel, ConfigDict

from contracts.commands import ErrorCode
from contracts.commands import recordings as cmd
from contracts.events import aggregate_subjects, subject_of
from services.recordings.application import RecordingsApplication
from services.recordings.domain import (
    STREAMABLE,
    RecordingConflict,
    RecordingError,
    RecordingForbidden,
    RecordingNotFound,
)
from services.recordings.egress import Egress
from services.recordings.projection import (
    LiveMeeting,
    MirrorChange,
    RecordingsView,
    RoomGone,
    RoomSeen,
)
from services.recordings.storage import ObjectStorage
from services.runtime.commands import CommandRouter
from services.runtime.consumer import Consumed, DurableConsumer
from services.runtime.logging import get_logger
from services.runtime.projection import Projection

log = get_logger("meetplane.recordings")

ERRORS: dict[type[Exception], ErrorCode] = {
    RecordingNotFound: ErrorCode.NOT_FOUND,
    RecordingConflict: ErrorCode.CONFLICT,
    RecordingForbidden: ErrorCode.FORBIDDEN,
    RecordingError: ErrorCode.INVALID,
}


class _AnyBody(BaseModel):
    """A forwarded LiveKit webhook: the gateway verified it; keep every field."""

    model_config = ConfigDict(extra="allow")


class RecordingsHandlers:
    """Binds the recordings application to NATS."""

    def __init__(
        self,
        app: RecordingsApplication,
        view: RecordingsView,
        storage: ObjectStorage,
        egress: Egress,
        broker: NatsBroker,
    ) -> None:
        self.app = app
        self.view = view
        self.storage = storage
        self.egress = egress
        self.broker = broker
        self.consumer: DurableConsumer | None = None
        self.projection: Projection | None = None

    async def _caught_up(self) -> None:
        """Read-your-writes: room/meeting events on the stream, and our own commits, applied."""
        if self.consumer is not None:
            await self.consumer.caught_up(timeout=3.0)
        await self._view_caught_up()

    async def _view_caught_up(self) -> None:
        if self.projection is not None:
            await self.projection.wait_caught_up()

    # ---- commands -----------------------------------------------------------------------

    async def start(self, request: cmd.StartRecording) -> dict[str, Any]:
        await self._caught_up()
        room = await self.app.call(self.view.room, request.roomId)
        if room is None or room["deleted"]:
            raise RecordingNotFound(
                f"Room '{request.roomId}' does not exist", error="room_not_found"
            )
        config = room["config"]
        if config.get("e2ee", {}).get("enabled"):
            raise RecordingForbidden(
                f"Recording is disabled for room '{request.roomId}' (e2ee is enabled)",
                error="recording_e2ee_enabled",
            )
        if not config.get("recording", {}).get("enabled", True):
            raise RecordingForbidden(
                f"Recording is disabled for room '{request.roomId}'", error="recording_disabled"
            )
        meeting_id = await self.app.call(self.view.live_meeting, request.roomId)
        if meeting_id is None:
            raise RecordingConflict(
                f"Room '{request.roomId}' has no participants",
                error="room_has_no_active_meeting",
            )
        room_recording = config.get("recording", {})
        override = request.config or cmd.RecordingOverride()
        layout = override.layout or room_recording.get("layout", "grid")
        encoding = (
            override.model_dump(mode="json")["encoding"]
            if override.encoding is not None
            else room_recording.get("encoding")
        )
        recording = await self.app.call(
            self.app.start,
            request.roomId,
            room["room_name"],
            meeting_id,
            layout,
            self.egress.effective_encoding(encoding),
        )
        recording_id = recording["recordingId"]
        try:
            egress_id = await self.egress.start(
                recording_id,
                request.roomId,
                recording.pop("objectKey"),
                recording["layout"],
                recording["encoding"],
            )
        except Exception as exc:
            await self.app.call(self.app.finish, recording_id, None, 0.0, f"egress: {exc}")
            raise RecordingConflict(
                f"the media backend refused: {exc}", error="egress_failed"
            ) from exc
        await self.app.call(self.app.activate, recording_id, egress_id)
        log.info("recording.started", room_id=request.roomId, recording_id=recording_id)
        return await self.app.call(self.app.get, recording_id)

    async def stop(self, request: cmd.RecordingRef, reason: str = "api") -> dict[str, Any]:
        """Mark the recording `ending`; the egress is stopped from the log (`egress_stopping`)."""
        record = await self.app.call(self.app.stop, request.recordingId, reason)
        log.info("recording.stopping", recording_id=request.recordingId, reason=reason)
        return record

    async def get(self, request: cmd.RecordingRef) -> dict[str, Any]:
        return await self.app.call(self.app.get, request.recordingId)

    async def access_secrets(self, request: cmd.RecordingRef) -> cmd.AccessSecrets:
        recording = await self.app.call(self.app.recording, request.recordingId)
        anonymous = await self.app.call(self.view.anonymous_recording_enabled, recording.room_id)
        return cmd.AccessSecrets(
            recordingId=recording.recording_id,
            roomId=recording.room_id,
            publicSecret=recording.public_secret,
            privateSecret=recording.private_secret,
            anonymousAccess=anonymous,
            issuedAt=recording.links_issued_at,
        )

    async def list_recordings(self, request: cmd.ListRecordings) -> dict[str, Any]:
        await self._view_caught_up()
        items, token = await self.app.call(
            self.view.list_page,
            request.roomId,
            request.status,
            request.maxItems,
            request.nextPageToken,
            request.sortOrder,
            request.sortField,
            request.roomName,
            request.roomNameMatchMode,
            request.roomNameCaseInsensitive,
            room_ids=request.roomIds,
        )
        return {
            "items": items,
            "nextPageToken": token,
            "isTruncated": token is not None,
            "maxItems": request.maxItems,
        }

    async def revoke_links(self, request: cmd.RecordingRef) -> dict[str, Any]:
        result = await self.app.call(self.app.revoke_links, request.recordingId)
        log.info("recording.links_revoked", recording_id=request.recordingId)
        return result

    async def delete(self, request: cmd.RecordingRef) -> dict[str, Any]:
        return await self.app.call(self.app.delete, request.recordingId)

    async def bulk_delete(self, request: cmd.BulkDeleteRecordings) -> dict[str, Any]:
        deleted, failed = [], []
        for recording_id in dict.fromkeys(request.recordingIds):
            try:
                await self.app.call(self.app.delete, recording_id)
                deleted.append(recording_id)
            except RecordingError as exc:
                failed.append(
                    {"recordingId": recording_id, "error": exc.error, "message": str(exc)}
                )
        return {"deleted": deleted, "failed": failed}

    async def media(self, request: cmd.RecordingRef) -> cmd.MediaLocation:
        record = await self.app.call(self.app.recording, request.recordingId)
        if record.status not in STREAMABLE:
            raise RecordingConflict(
                f"Recording '{request.recordingId}' is not streamable",
                error="recording_not_ready",
            )
        url = await asyncio.to_thread(
            self.storage.presigned_get, record.object_key, timedelta(minutes=10)
        )
        return cmd.MediaLocation(
            recordingId=record.recording_id,
            filename=record.filename,
            size=record.size or 0,
            contentType="video/mp4",
            url=url,
        )

    async def room_has_recordings(
        self, request: cmd.RoomHasRecordings
    ) -> cmd.RoomHasRecordingsResult:
        await self._view_caught_up()
        ids = await self.app.call(self.view.room_recording_ids, request.roomId)
        return cmd.RoomHasRecordingsResult(hasRecordings=bool(ids), count=len(ids))

    async def sweep_orphans(self, request: cmd.SweepOrphans) -> cmd.SweepOrphansResult:
        """Objects without a live record are deleted; records without an object are reported.

        Only objects older than `minAgeMs` count: a recording's object can land a
        moment before its record reaches the view, and must not be swept then.
        """
        await self._view_caught_up()
        known = await self.app.call(self.view.all_object_keys)
        listed = await asyncio.to_thread(lambda: list(self.storage.list_objects("recordings/")))
        cutoff = self.app.clock.now_ms() - request.minAgeMs
        objects = {o.key for o in listed}
        orphans = [
            o.key
            for o in listed
            if (o.key not in known or known[o.key][1]) and o.last_modified_ms <= cutoff
        ]
        missing = [
            known[k][0]
            for k in known
            if k not in objects and not known[k][1] and known[k][2] in STREAMABLE
        ]
        deleted = 0
        if not request.dryRun:
            for key in orphans:
                await asyncio.to_thread(self.storage.delete, key)
                deleted += 1
        log.info("recordings.sweep", orphans=len(orphans), missing=len(missing), deleted=deleted)
        return cmd.SweepOrphansResult(
            objectsWithoutRecord=orphans, recordsWithoutObject=missing, deletedObjects=deleted
        )

    async def livekit_webhook(self, request: dict[str, Any]) -> dict[str, Any]:
        """egress_* webhooks: activate / complete / fail (replays change nothing)."""
        egress = request.get("egress") or {}
        recording_id = self._recording_for_egress(egress)
        if recording_id is None:
            return {"applied": False}
        status = str(egress.get("status", ""))
        event = request.get("event")
        egress_id = egress.get("egress_id") or request.get("egress_id")
        if event == "egress_started" or (event == "egress_updated" and status == "EGRESS_ACTIVE"):
            await self.app.call(self.app.activate, recording_id, egress_id)
            return {"applied": True}
        if event == "egress_ended":
            files = egress.get("file_results") or [egress.get("file") or {}]
            size = int(files[0].get("size", 0)) if files else 0
            duration = int(files[0].get("duration", 0)) / 1e9 if files else 0.0
            ended_ok = status in ("EGRESS_COMPLETE", "EGRESS_LIMIT_REACHED")
            error = None if ended_ok else (egress.get("error") or status or "egress failed")
            changed = await self.app.call(
                self.app.finish,
                recording_id,
                size,
                duration,
                error,
                status == "EGRESS_LIMIT_REACHED",
                "aborted" if status == "EGRESS_ABORTED" else None,
            )
            return {"applied": changed}
        return {"applied": False}

    @staticmethod
    def _recording_for_egress(egress: dict[str, Any]) -> str | None:
        files = egress.get("file_results") or [egress.get("file") or {}]
        path = str((files[0] if files else {}).get("filename", ""))
        if not path:
            return None
        return path.rsplit("/", 1)[-1].removesuffix(".mp4")

    # ---- consumed events --------------------------------------------------------------------

    async def _delete_room_recordings(self, room_id: str) -> None:
        await self._view_caught_up()
        active = await self.app.call(self.app.active_in_room, room_id)
        if active is not None:
            with contextlib.suppress(RecordingConflict):  # already ending
                await self.stop(cmd.RecordingRef(recordingId=active), reason="room_deleted")
            await self.app.call(self.app.finish, active, None, 0.0, "room deleted")
        for recording_id in await self.app.call(self.view.room_recording_ids, room_id):
            try:
                await self.app.call(self.app.delete, recording_id)
            except RecordingNotFound:
                continue  # already deleted: a replayed event
        log.info("recordings.room_deleted", room_id=room_id)

    async def _meeting_ended(self, room_id: str) -> None:
        active = await self.app.call(self.app.active_in_room, room_id)
        if active is not None:
            with contextlib.suppress(RecordingConflict):  # already ending
                await self.stop(cmd.RecordingRef(recordingId=active), reason="meeting_ended")
            log.info("recording.stopped_by_meeting_end", room_id=room_id, recording_id=active)

    async def process_events(self, batch: Sequence[Consumed], position: Tracking) -> None:
        """The `recordings-events` consumer: rooms and their meetings, in stream order.

        What the events say about rooms and meetings is mirrored in one view
        transaction per run of events; an event that acts (a room deleted with
        its recordings, a meeting ended while recording) first writes the run
        before it, so it sees the view as of itself.  The position is recorded
        after the batch (every write is idempotent).
        """
        pending: list[MirrorChange] = []
        for consumed in batch:
            kind, data = consumed.envelope.type, consumed.envelope.data
            if kind in ("RoomCreated", "RoomUpdated"):
                pending.append(RoomSeen(data["room"]))
            elif kind == "RoomDeleted":
                pending.append(RoomGone(data["roomId"]))
                if data["withRecordings"] == "force":
                    await self.app.call(self.view.mirror, pending)
                    pending = []
                    await self._delete_room_recordings(data["roomId"])
            elif kind == "MeetingStarted":
                pending.append(LiveMeeting(data["roomId"], data["meetingId"]))
            elif kind == "MeetingEnded":
                pending.append(LiveMeeting(data["roomId"], None))
                await self.app.call(self.view.mirror, pending)
                pending = []
                await self._meeting_ended(data["roomId"])
        await self.app.call(self._mirror_and_track, pending, position)

    def _mirror_and_track(self, pending: Sequence[MirrorChange], position: Tracking) -> None:
        """One store call for the batch's last view writes and its position."""
        self.view.mirror(pending)
        self.app.save_tracked(tracking=position)

    def register(self, router: CommandRouter) -> None:
        """Answer the recordings commands on `router`."""
        router.register("start", cmd.StartRecording, self.start)
        router.register("stop", cmd.RecordingRef, self.stop)
        router.register("get", cmd.RecordingRef, self.get)
        router.register("access_secrets", cmd.RecordingRef, self.access_secrets)
        router.register("list", cmd.ListRecordings, self.list_recordings)
        router.register("delete", cmd.RecordingRef, self.delete)
        router.register("revoke_links", cmd.RecordingRef, self.revoke_links)
        router.register("bulk_delete", cmd.BulkDeleteRecordings, self.bulk_delete)
        router.register("media", cmd.RecordingRef, self.media)
        router.register("room_has_recordings", cmd.RoomHasRecordings, self.room_has_recordings)
        router.register("sweep_orphans", cmd.SweepOrphans, self.sweep_orphans)
        router.register("livekit_webhook", _AnyBody, self._webhook)

    async def _webhook(self, request: _AnyBody) -> dict[str, Any]:
        return await self.livekit_webhook(request.model_dump())


# What the recordings service consumes: rooms, and meetings starting and ending.
CONSUMED_SUBJECTS = [
    aggregate_subjects("room"),
    subject_of("MeetingStarted"),
    subject_of("MeetingEnded"),
]
