"""The LiveKit media backend and egress against an HTTP server speaking LiveKit's Twirp protocol.

No LiveKit server can run here, so the test runs a real HTTP server that decodes
the protobuf requests the `livekit-api` SDK sends, answers as LiveKit would, and
records every request so the test can assert on what reached "LiveKit".
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from livekit import api
from livekit.protocol import egress as egress_proto
from livekit.protocol import models
from livekit.protocol import room as room_proto
from prometheus_client import REGISTRY

from services.meetings.media import LiveKitMediaBackend, MediaBackendUnavailable, MediaSettings
from services.recordings.egress import LiveKitEgress
from services.recordings.storage import ObjectStorage, StorageSettings
from services.runtime.settings import RuntimeSettings
from tests.support.infra import free_port

KEY, SECRET = "lk-test-key", "lk-test-secret-that-is-at-least-32-chars"

REQUESTS = {
    "livekit.RoomService/ListParticipants": (
        room_proto.ListParticipantsRequest,
        room_proto.ListParticipantsResponse,
    ),
    "livekit.RoomService/RemoveParticipant": (
        room_proto.RoomParticipantIdentity,
        room_proto.RemoveParticipantResponse,
    ),
    "livekit.RoomService/UpdateParticipant": (
        room_proto.UpdateParticipantRequest,
        models.ParticipantInfo,
    ),
    "livekit.RoomService/DeleteRoom": (room_proto.DeleteRoomRequest, room_proto.DeleteRoomResponse),
    "livekit.Egress/StartRoomCompositeEgress": (
        egress_proto.RoomCompositeEgressRequest,
        egress_proto.EgressInfo,
    ),
    "livekit.Egress/StopEgress": (egress_proto.StopEgressRequest, egress_proto.EgressInfo),
}


class FakeLiveKit:
    """Rooms with participants; every request recorded as (method, request, claims)."""

    def __init__(self) -> None:
        self.rooms: dict[str, list[str]] = {"standup": ["alice", "bob"]}
        self.received: list[tuple[str, Any, api.Claims]] = []
        self.fail_with: int | None = None

    async def handle(self, request: web.Request) -> web.Response:
        method = f"{request.match_info['service']}/{request.match_info['method']}"
        request_class, response_class = REQUESTS[method]
        claims = api.TokenVerifier(KEY, SECRET).verify(
            request.headers["Authorization"].removeprefix("Bearer ")
        )
        message = request_class.FromString(await request.read())
        self.received.append((method, message, claims))
        if self.fail_with:
            return web.Response(status=self.fail_with, text="boom")
        room = getattr(message, "room", "") or getattr(message, "room_name", "")
        if method.startswith("livekit.RoomService") and room not in self.rooms:
            return web.json_response({"code": "not_found", "msg": "room not found"}, status=404)
        response: Any = response_class()
        if method.endswith("ListParticipants"):
            response = room_proto.ListParticipantsResponse(
                participants=[models.ParticipantInfo(identity=i) for i in self.rooms[room]]
            )
        if method.endswith("RemoveParticipant") and message.identity not in self.rooms[room]:
            return web.json_response(
                {"code": "not_found", "msg": "participant not found"}, status=404
            )
        if method.endswith("StartRoomCompositeEgress"):
            response = egress_proto.EgressInfo(egress_id="EG_123", room_name=room)
        return web.Response(body=response.SerializeToString(), content_type="application/protobuf")


@pytest.fixture
async def livekit() -> AsyncIterator[tuple[FakeLiveKit, str]]:
    fake = FakeLiveKit()
    app = web.Application()
    app.router.add_post("/twirp/{service}/{method}", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield fake, f"ws://127.0.0.1:{port}"
    await runner.cleanup()


def settings(url: str) -> MediaSettings:
    return MediaSettings(
        livekit_url=url, livekit_api_key=KEY, livekit_api_secret=SECRET, media_backend="livekit"
    )


async def test_tokens_carry_the_role_grants() -> None:
    backend = LiveKitMediaBackend(settings("ws://unused"))
    moderator = {"canRecord": True, "canKickParticipants": True, "canWriteChat": True}
    speaker = {"canWriteChat": False, "canShareScreen": False}
    verifier = api.TokenVerifier(KEY, SECRET)
    mod = verifier.verify(
        await backend.issue_token("standup", "alice", "Alice", moderator, {"role": "moderator"})
    )
    spk = verifier.verify(
        await backend.issue_token("standup", "bob", "Bob", speaker, {"role": "speaker"})
    )
    assert (mod.identity, mod.name, mod.video.room) == ("alice", "Alice", "standup")
    assert mod.video.room_admin and mod.video.room_record and mod.video.can_publish_data
    assert not spk.video.room_admin and not spk.video.room_record and not spk.video.can_publish_data
    assert (
        "screen_share" not in spk.video.can_publish_sources
        and "camera" in spk.video.can_publish_sources
    )


async def test_room_service_calls_reach_livekit_with_admin_tokens(livekit: Any) -> None:
    fake, url = livekit
    backend = LiveKitMediaBackend(settings(url))
    not_found_before = _livekit("meetplane_external_call_errors_total", "delete_room")
    try:
        assert await backend.list_participants("standup") == ["alice", "bob"]
        assert await backend.list_participants("nowhere") == []
        await backend.remove_participant("standup", "bob")
        await backend.remove_participant("standup", "ghost")  # missing is fine
        await backend.update_participant_permissions("standup", "alice", {"canWriteChat": False})
        await backend.delete_room("standup")
        await backend.delete_room("nowhere")  # missing is fine
    finally:
        await backend.close()
    methods = [m.split("/")[1] for m, _, _ in fake.received]
    assert methods == [
        "ListParticipants",
        "ListParticipants",
        "RemoveParticipant",
        "RemoveParticipant",
        "UpdateParticipant",
        "DeleteRoom",
        "DeleteRoom",
    ]
    _, remove, claims = fake.received[2]
    assert (remove.room, remove.identity) == ("standup", "bob")
    assert claims.video.room_admin and claims.video.room == "standup"
    _, update, _ = fake.received[4]
    assert update.identity == "alice" and update.permission.can_publish_data is False
    _, delete, delete_claims = fake.received[5]
    assert delete.room == "standup" and delete_claims.video.room_create
    # "Not found" is LiveKit's answer, not its failure.
    assert _livekit("meetplane_external_call_errors_total", "delete_room") == not_found_before


def _livekit(metric: str, operation: str) -> float:
    labels = {"dependency": "livekit", "operation": operation}
    return REGISTRY.get_sample_value(metric, labels) or 0


async def test_server_errors_become_unavailable(livekit: Any) -> None:
    fake, url = livekit
    fake.fail_with = 503
    backend = LiveKitMediaBackend(settings(url))
    errors = _livekit("meetplane_external_call_errors_total", "remove_participant")
    calls = _livekit("meetplane_external_call_seconds_count", "remove_participant")
    try:
        with pytest.raises(MediaBackendUnavailable):
            await backend.remove_participant("standup", "bob")
    finally:
        await backend.close()
    # Timed and counted as a LiveKit failure (the dependency-errors alert and dashboard).
    assert _livekit("meetplane_external_call_errors_total", "remove_participant") == errors + 1
    assert _livekit("meetplane_external_call_seconds_count", "remove_participant") == calls + 1


async def test_room_composite_egress_uploads_to_the_bucket(livekit: Any) -> None:
    fake, url = livekit
    storage = ObjectStorage(
        StorageSettings(endpoint="s3.example:9000", access_key="ak", secret_key="sk", bucket="recs")
    )
    egress = LiveKitEgress(
        RuntimeSettings(livekit_url=url, livekit_api_key=KEY, livekit_api_secret=SECRET), storage
    )
    egress_id = await egress.start(
        "standup--1", "standup", "recordings/standup/standup--1.mp4", "grid", "H264_720P_30"
    )
    await egress.stop("standup--1", egress_id)
    assert egress_id == "EG_123"
    (start_method, start, claims), (stop_method, stop, _) = fake.received
    assert start_method.endswith("StartRoomCompositeEgress") and claims.video.room_record
    assert (start.room_name, start.layout) == ("standup", "grid")
    output = start.file_outputs[0]
    assert output.filepath == "recordings/standup/standup--1.mp4"
    assert (output.s3.bucket, output.s3.access_key, output.s3.endpoint) == (
        "recs",
        "ak",
        "http://s3.example:9000",
    )
    assert stop_method.endswith("StopEgress") and stop.egress_id == "EG_123"
