"""Recordings end to end in one process: real rooms, meetings, recordings, gateway, NATS and S3."""

from __future__ import annotations

import asyncio
import io
import zipfile
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from services.recordings.storage import ObjectStorage, StorageSettings
from services.runtime.rpc import request
from tests.support.recording_platform import record, recordings_platform, room_in_meeting
from tests.support.services import wait_for


class SizedEgress:
    """A media-port stand-in (no LiveKit here): writes an object of a given size and,
    when stopped, reports completion the way LiveKit does, with an egress_ended webhook."""

    def __init__(self, storage: ObjectStorage, size: int, broker: Any) -> None:
        self.storage, self.size, self.broker = storage, size, broker

    def effective_encoding(self, encoding: Any) -> Any:
        return encoding

    async def start(
        self, recording_id: str, room_id: str, object_key: str, layout: str, encoding: Any
    ) -> str:
        def chunks() -> Iterator[bytes]:
            block = bytes(range(256)) * 4096  # 1 MiB
            for offset in range(0, self.size, len(block)):
                yield block[: min(len(block), self.size - offset)]

        # Like a real egress, the file is written while the recording runs, not in `start`.
        self.upload = asyncio.create_task(
            asyncio.to_thread(self.storage.put_stream, object_key, chunks(), "video/mp4")
        )
        self.object_key = object_key
        return "sized"

    def close(self) -> None:
        """Nothing runs in a thread here."""

    async def stop(self, recording_id: str, egress_id: str | None) -> None:
        asyncio.get_running_loop().create_task(self._ended(recording_id))

    async def _ended(self, recording_id: str) -> None:
        await self.upload
        webhook = {
            "event": "egress_ended",
            "id": f"EV_{recording_id}",
            "egress": {
                "status": "EGRESS_COMPLETE",
                "file_results": [
                    {"filename": self.object_key, "size": self.size, "duration": 1_000_000_000}
                ],
            },
        }
        await request(self.broker, "recordings", "livekit_webhook", webhook, timeout=10)


@pytest.fixture
async def http(settings_factory: Any, storage_settings: StorageSettings) -> AsyncIterator[Any]:
    async for pair in recordings_platform(settings_factory, storage_settings):
        yield pair


async def test_start_rules_and_lifecycle(http: Any) -> None:
    client, storage = http
    plain = (await client.post("/api/v1/rooms", json={"roomName": "idle"})).json()
    no_meeting = await client.post("/api/v1/recordings", json={"roomId": plain["roomId"]})
    assert (
        no_meeting.status_code == 409 and no_meeting.json()["code"] == "room_has_no_active_meeting"
    )
    written = REGISTRY.get_sample_value("meetplane_recording_bytes_written_total") or 0
    s3 = {"dependency": "s3", "operation": "put_object"}
    uploads = REGISTRY.get_sample_value("meetplane_external_call_seconds_count", s3) or 0
    room = await room_in_meeting(client)
    recording = await record(client, room["roomId"])
    assert recording["size"] > 1000 and recording["duration"] > 1.0
    assert storage.stat(f"recordings/{room['roomId']}/{recording['filename']}") is not None
    # The recordings row of the dashboard: bytes written, S3 calls, none active now.
    assert await wait_for(
        lambda: (
            REGISTRY.get_sample_value("meetplane_recording_bytes_written_total")
            == written + recording["size"]
        )
    )
    assert REGISTRY.get_sample_value("meetplane_external_call_seconds_count", s3) == uploads + 1
    assert REGISTRY.get_sample_value("meetplane_recordings_active") is not None
    again = await client.post(f"/api/v1/recordings/{recording['recordingId']}/stop")
    assert again.status_code == 409 and again.json()["code"] == "recording_not_active"
    listed = (await client.get("/api/v1/recordings", params={"roomId": room["roomId"]})).json()
    assert [r["recordingId"] for r in listed["recordings"]] == [recording["recordingId"]]
    bad = await client.get("/api/v1/recordings", params={"status": "weird"})
    assert bad.status_code == 422


async def test_one_recording_at_a_time_and_disabled_rooms(http: Any) -> None:
    client, _ = http
    room = await room_in_meeting(client)

    async def start() -> httpx.Response | None:
        response = await client.post("/api/v1/recordings", json={"roomId": room["roomId"]})
        return response if response.status_code == 201 else None

    first = await wait_for(start)
    second = await client.post("/api/v1/recordings", json={"roomId": room["roomId"]})
    assert second.status_code == 409 and second.json()["code"] == "recording_already_started"
    await client.post(f"/api/v1/recordings/{first.json()['recordingId']}/stop")
    disabled = await room_in_meeting(client, config={"recording": {"enabled": False}})

    async def refused() -> httpx.Response | None:
        response = await client.post("/api/v1/recordings", json={"roomId": disabled["roomId"]})
        return response if response.status_code == 403 else None

    assert (await wait_for(refused)).json()["code"] == "recording_disabled"


async def test_meeting_end_stops_the_recording(http: Any) -> None:
    client, _ = http
    room = await room_in_meeting(client)

    async def start() -> httpx.Response | None:
        response = await client.post("/api/v1/recordings", json={"roomId": room["roomId"]})
        return response if response.status_code == 201 else None

    recording_id = (await wait_for(start)).json()["recordingId"]
    assert (await client.delete(f"/api/v1/meetings/{room['roomId']}")).status_code == 200

    async def complete() -> bool:
        got = (await client.get(f"/api/v1/recordings/{recording_id}")).json()
        return bool(got["status"] == "complete")

    await wait_for(complete, timeout=20)


RANGE_CASES = [
    ("bytes=0-0", 206, "bytes 0-0/{n}", slice(0, 1)),
    ("bytes={last}-{last}", 206, "bytes {last}-{last}/{n}", slice(-1, None)),
    ("bytes=-500", 206, "bytes {tail}-{last}/{n}", slice(-500, None)),
    ("bytes=100-", 206, "bytes 100-{last}/{n}", slice(100, None)),
    ("bytes=10-19", 206, "bytes 10-19/{n}", slice(10, 20)),
    ("bytes=5000000000-5000000099", 416, "bytes */{n}", None),
    ("bytes=50-10", 416, "bytes */{n}", None),
    ("bytes=-0", 416, "bytes */{n}", None),
]


async def test_media_ranges(http: Any) -> None:
    client, _ = http
    room = await room_in_meeting(client)
    recording = await record(client, room["roomId"], seconds=1.0)
    n = recording["size"]
    whole = await client.get(f"/api/v1/recordings/{recording['recordingId']}/media")
    assert whole.status_code == 200 and whole.headers["accept-ranges"] == "bytes"
    assert len(whole.content) == n
    fmt = {"n": n, "last": n - 1, "tail": n - 500}
    for header, status, content_range, body in RANGE_CASES:
        response = await client.get(
            f"/api/v1/recordings/{recording['recordingId']}/media",
            headers={"Range": header.format(**fmt)},
        )
        assert response.status_code == status, (header, response.text)
        assert response.headers["content-range"] == content_range.format(**fmt), header
        if body is not None:
            assert response.content == whole.content[body], header
            assert response.headers["cache-control"] == "public, max-age=3600"
    for malformed in ("bytes=abc", "bytes=" + "9" * 5000, "items=0-1"):
        response = await client.get(
            f"/api/v1/recordings/{recording['recordingId']}/media", headers={"Range": malformed}
        )
        assert response.status_code == 422, malformed


async def test_share_links_download_zip_and_deletion(http: Any) -> None:
    client, storage = http
    room = await room_in_meeting(client)
    recording = await record(client, room["roomId"], seconds=1.0)
    rid = recording["recordingId"]
    public = (await client.get(f"/api/v1/recordings/{rid}/url")).json()["url"]
    private = (
        await client.get(f"/api/v1/recordings/{rid}/url", params={"privateAccess": "true"})
    ).json()["url"]
    base = str(client.base_url)
    # v3.8.0's URL shape: the public base URL, the recording page, `recordingSecret`.
    assert public.startswith(f"http://127.0.0.1:8080/recording/{rid}?recordingSecret=")
    public_secret = public.split("recordingSecret=")[1]
    private_secret = private.split("recordingSecret=")[1]
    assert public_secret != private_secret
    anonymous = httpx.AsyncClient(base_url=base)
    media = f"/api/v1/recordings/{rid}/media"
    shared = await anonymous.get(media, params={"recordingSecret": public_secret})
    assert shared.status_code == 200 and len(shared.content) == recording["size"]
    assert shared.headers["cache-control"] == "public, max-age=3600"
    info = await anonymous.get(
        f"/api/v1/recordings/{rid}", params={"recordingSecret": public_secret}
    )
    assert info.status_code == 200 and info.json()["recordingId"] == rid
    assert (await anonymous.get(media)).status_code == 401
    # A private link needs the reader's own credentials.
    assert (
        await anonymous.get(media, params={"recordingSecret": private_secret})
    ).status_code == 401
    with_key = await client.get(media, params={"recordingSecret": private_secret})
    assert with_key.status_code == 200
    wrong = await anonymous.get(media, params={"recordingSecret": "nope"})
    assert wrong.status_code == 400
    assert wrong.json()["message"] == f"Secret 'nope' is not recognized for recording '{rid}'"

    download = await client.get(f"/api/v1/recordings/{rid}/download")
    assert download.headers["content-disposition"].startswith("attachment")
    archive = await client.get("/api/v1/recordings/download", params={"recordingIds": rid})
    with zipfile.ZipFile(io.BytesIO(archive.content)) as zipped:
        assert zipped.read(recording["filename"]) == download.content
    too_long = "r" * 300 + "--EG_1--1"
    assert (
        await client.get("/api/v1/recordings/download", params={"recordingIds": too_long})
    ).status_code == 422
    missing = f"{room['roomId']}--EG_nothing--x"
    empty = await client.get("/api/v1/recordings/download", params={"recordingIds": missing})
    assert empty.status_code == 400

    assert (await client.delete(f"/api/v1/recordings/{rid}")).status_code == 200
    assert (
        await anonymous.get(media, params={"recordingSecret": public_secret})
    ).status_code == 404
    key = f"recordings/{room['roomId']}/{recording['filename']}"
    await wait_for(lambda: storage.stat(key) is None)
    bulk = await client.delete("/api/v1/recordings", params={"recordingIds": f"{rid},{missing}"})
    assert bulk.status_code == 400
    assert bulk.json() == {
        "message": "2 recording(s) could not be deleted",
        "deleted": [],
        "failed": [
            {"recordingId": rid, "error": f"Recording '{rid}' not found"},
            {"recordingId": missing, "error": f"Recording '{missing}' not found"},
        ],
    }
    malformed = await client.delete("/api/v1/recordings", params={"recordingIds": "nope"})
    assert malformed.status_code == 422
    await anonymous.aclose()


@pytest.mark.parametrize(("policy", "kept"), [("force", False), ("close", True)])
async def test_room_deletion_policy_for_recordings(http: Any, policy: str, kept: bool) -> None:
    client, storage = http
    room = await room_in_meeting(client)
    recording = await record(client, room["roomId"], seconds=1.0)
    assert (await client.delete(f"/api/v1/meetings/{room['roomId']}")).status_code == 200

    async def meeting_over() -> bool:
        got = (await client.get(f"/api/v1/rooms/{room['roomId']}")).json()
        return bool(got["status"] == "open")

    await wait_for(meeting_over)
    refused = await client.delete(f"/api/v1/rooms/{room['roomId']}")
    assert refused.status_code == 409 and refused.json()["code"] == "room_has_recordings"
    done = await client.delete(f"/api/v1/rooms/{room['roomId']}", params={"withRecordings": policy})
    assert done.status_code == 200
    key = f"recordings/{room['roomId']}/{recording['filename']}"
    if kept:
        assert done.json()["successCode"] == "room_closed"
        assert (
            await client.get(f"/api/v1/recordings/{recording['recordingId']}")
        ).status_code == 200
        assert storage.stat(key) is not None
    else:
        assert done.json()["successCode"] == "room_and_recordings_deleted"

        async def gone() -> bool:
            got = await client.get(f"/api/v1/recordings/{recording['recordingId']}")
            return got.status_code == 404 and storage.stat(key) is None

        await wait_for(gone, timeout=20)


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def test_200_mb_recording_streams_with_flat_memory(
    settings_factory: Any, storage_settings: StorageSettings, client_broker: Any
) -> None:
    size = 200 * 1024 * 1024
    egress = SizedEgress(ObjectStorage(storage_settings), size, client_broker)
    async for client, _ in recordings_platform(settings_factory, storage_settings, egress):
        room = await room_in_meeting(client)
        recording = await record(client, room["roomId"], seconds=0, timeout=120)
        assert recording["size"] == size
        before, peak, received = rss_mb(), 0.0, 0
        async with client.stream(
            "GET", f"/api/v1/recordings/{recording['recordingId']}/media"
        ) as response:
            assert response.status_code == 200
            async for chunk in response.aiter_bytes():
                received += len(chunk)
                peak = max(peak, rss_mb())
        assert received == size
        print(f"\n200 MB streamed: RSS before {before:.0f} MB, peak {peak:.0f} MB")
        assert peak - before < 60, "memory grew with the file size"
