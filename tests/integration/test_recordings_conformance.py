"""Every recordings route against OpenVidu Meet v3.8.0's published spec, with exact bodies.

Each request body meetplane accepts is checked against the spec's request schema,
and each response (success and every documented error) against the schema and
headers of its status.  A quick egress stands in for the media backend so that
recordings finish at once with a chosen size and duration.
"""

from __future__ import annotations

import asyncio
import io
import time
import zipfile
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from services.gateway.tokens import MemberClaims, TokenService
from services.recordings.storage import ObjectStorage, StorageSettings
from services.runtime.rpc import request
from tests.support import reference
from tests.support.recording_platform import platform, room_in_meeting
from tests.support.services import wait_for

API = "/meet/api/v1"
SIGNING_KEY = "conformance-signing-key-0123456789abcdef"
SPEC = reference.PUBLIC_V380


class QuickEgress:
    """Writes `size` bytes at start; a stop ends the recording at once (as LiveKit's
    egress_ended would) with the room's chosen duration."""

    def __init__(self, storage: ObjectStorage, broker: Any) -> None:
        self.storage, self.broker = storage, broker
        self.sizes: dict[str, int] = {}
        self.durations: dict[str, float] = {}
        self.keys: dict[str, str] = {}

    def effective_encoding(self, encoding: Any) -> Any:
        return encoding

    async def start(
        self, recording_id: str, room_id: str, object_key: str, layout: str, encoding: Any
    ) -> str:
        size = self.sizes.get(room_id, 4096)

        def chunks() -> Iterator[bytes]:
            yield bytes(i % 251 for i in range(size))

        await asyncio.to_thread(self.storage.put_stream, object_key, chunks(), "video/mp4")
        self.keys[recording_id] = object_key
        return f"EG_quick_{len(self.keys)}"

    def close(self) -> None:
        """Nothing runs in a thread here."""

    async def stop(self, recording_id: str, egress_id: str | None) -> None:
        room_id = recording_id.split("--")[0]
        webhook = {
            "event": "egress_ended",
            "egress": {
                "egress_id": egress_id,
                "status": "EGRESS_COMPLETE",
                "file_results": [
                    {
                        "filename": self.keys[recording_id],
                        "size": self.sizes.get(room_id, 4096),
                        "duration": int(self.durations.get(room_id, 1.5) * 1e9),
                    }
                ],
            },
        }
        asyncio.get_running_loop().create_task(
            request(self.broker, "recordings", "livekit_webhook", webhook, timeout=10)
        )


@pytest.fixture
async def quick(
    settings_factory: Any, storage_settings: StorageSettings, client_broker: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, QuickEgress]]:
    egress = QuickEgress(ObjectStorage(storage_settings), client_broker)
    gateway = {"auth_signing_key": SIGNING_KEY}
    async with platform(settings_factory, storage_settings, egress, gateway) as (client, _):
        yield client, egress


def member_token(room_id: str, **permissions: bool) -> dict[str, str]:
    """A room member token as the gateway signs them (same signing key)."""
    claims = MemberClaims(
        room_id=room_id, identity="m1", kind="anonymous", role="speaker", permissions=permissions
    )
    return {"X-Room-Member-Token": TokenService(SIGNING_KEY).member_token(claims)}


@pytest.fixture
async def quick_on_each_store(
    settings_factory: Any,
    storage_settings: StorageSettings,
    client_broker: Any,
    store: dict[str, str],
) -> AsyncIterator[tuple[httpx.AsyncClient, QuickEgress]]:
    """`quick` with the recordings service on SQLite and on PostgreSQL (its read model sorts)."""
    egress = QuickEgress(ObjectStorage(storage_settings), client_broker)
    async with platform(settings_factory, storage_settings, egress, **store) as (client, _):
        yield client, egress


async def call(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    *,
    expect: int,
    json: Any = None,
    **kwargs: Any,
) -> httpx.Response:
    """Send a request, check the status, and check the response against the spec."""
    if json is not None and expect < 400:
        reference.check_request(SPEC, method, reference.template(path), json)
    response = await client.request(method, f"{API}{path}", json=json, **kwargs)
    assert response.status_code == expect, (method, path, response.text)
    content_type = response.headers.get("content-type", "").split(";")[0]
    body = response.json() if content_type == "application/json" else None
    reference.check_response(
        SPEC,
        method,
        reference.template(path),
        expect,
        body,
        dict(response.headers),
        content_type or "application/json",
    )
    return response


async def started(client: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
    async def start() -> httpx.Response | None:
        response = await client.post(f"{API}/recordings", json=body)
        return response if response.status_code == 201 else None

    return await wait_for(start)  # type: ignore[no-any-return]


async def finished(client: httpx.AsyncClient, recording_id: str) -> dict[str, Any]:
    await call(client, "POST", f"/recordings/{recording_id}/stop", expect=202)

    async def complete() -> dict[str, Any] | None:
        got = (await client.get(f"{API}/recordings/{recording_id}")).json()
        return got if got["status"] == "complete" else None

    return await wait_for(complete)  # type: ignore[no-any-return]


async def test_start_stop_get_conform(quick: Any) -> None:
    client, egress = quick
    room = await room_in_meeting(client, roomName="Conformance")
    room_id = room["roomId"]
    egress.sizes[room_id], egress.durations[room_id] = 5000, 2.5

    # Validation errors name the field by its path.
    for body, field in (
        ({"roomId": room_id, "config": {"layout": "diagonal"}}, "config.layout"),
        ({"roomId": room_id, "config": {"encoding": "H264_4K"}}, "config.encoding"),
        ({"roomId": room_id, "config": {"encoding": {"video": {"width": 1}}}}, "config.encoding"),
        ({"roomId": room_id, "config": {"bitrate": 1}}, "config.bitrate"),
        ({"roomId": 5}, "roomId"),
        ({}, "roomId"),
    ):
        rejected = await call(client, "POST", "/recordings", json=body, expect=422)
        fields = [d["field"] for d in rejected.json()["details"]]
        assert any(f.startswith(field) for f in fields), (body, fields)
    await call(client, "POST", "/recordings", json={"roomId": "no_such_room"}, expect=404)

    body = {"roomId": room_id, "config": {"layout": "speaker", "encoding": "H264_1080P_30"}}
    reference.check_request(SPEC, "POST", "/recordings", body)
    response = await started(client, body)
    reference.check_response(
        SPEC, "POST", "/recordings", 201, response.json(), dict(response.headers)
    )
    recording = response.json()
    rid = recording["recordingId"]
    assert response.headers["location"] == f"http://127.0.0.1:8080{API}/recordings/{rid}"
    assert rid.startswith(f"{room_id}--EG_") and len(rid.split("--")) == 3
    assert recording == {
        "recordingId": rid,
        "roomId": room_id,
        "roomName": "Conformance",
        "status": "active",
        "layout": "speaker",
        "encoding": "H264_1080P_30",
        "filename": f"{rid}.mp4",
        "startDate": recording["startDate"],
    }
    again = await call(client, "POST", "/recordings", json={"roomId": room_id}, expect=409)
    assert again.json()["message"] == f"Room '{room_id}' is already being recorded"
    await call(client, "GET", f"/recordings/{rid}/media", expect=409)
    await call(client, "DELETE", f"/recordings/{rid}", expect=409)
    only = await call(
        client,
        "GET",
        f"/recordings/{rid}",
        expect=200,
        params={"fields": "status,nope"},
        headers={"X-Fields": "recordingId"},
    )
    assert only.json() == {"recordingId": rid, "status": "active"}  # union; unknown ignored

    stopped = await call(client, "POST", f"/recordings/{rid}/stop", expect=202)
    assert stopped.headers["location"] == f"http://127.0.0.1:8080{API}/recordings/{rid}"
    ending = stopped.json()
    assert ending["status"] == "ending" and ending["details"] == "Stopped using API"
    assert ending["duration"] >= 0 and ending["endDate"] >= ending["startDate"]

    async def complete() -> dict[str, Any] | None:
        got = (await client.get(f"{API}/recordings/{rid}")).json()
        return got if got["status"] == "complete" else None

    await wait_for(complete)
    final = await call(client, "GET", f"/recordings/{rid}", expect=200)
    assert final.json() == {
        "recordingId": rid,
        "roomId": room_id,
        "roomName": "Conformance",
        "status": "complete",
        "layout": "speaker",
        "encoding": "H264_1080P_30",
        "filename": f"{rid}.mp4",
        "startDate": recording["startDate"],
        "endDate": ending["endDate"],
        "duration": 2.5,
        "size": 5000,
        "details": "Stopped using API",
    }
    not_active = await call(client, "POST", f"/recordings/{rid}/stop", expect=409)
    assert not_active.json()["message"] == f"Recording '{rid}' is already stopped"
    missing = f"{room_id}--EG_missing--x"
    gone = await call(client, "GET", f"/recordings/{missing}", expect=404)
    assert gone.json()["message"] == f"Recording '{missing}' not found"
    await call(client, "POST", f"/recordings/{missing}/stop", expect=404)
    await call(client, "GET", "/recordings/not-a-recording-id", expect=422)


async def test_media_links_and_deletion_conform(quick: Any) -> None:
    client, egress = quick
    room = await room_in_meeting(client, roomName="Media")
    egress.sizes[room["roomId"]] = 3000
    rid = (await started(client, {"roomId": room["roomId"]})).json()["recordingId"]
    await finished(client, rid)

    whole = await call(client, "GET", f"/recordings/{rid}/media", expect=200)
    assert whole.headers["cache-control"] == "public, max-age=3600"
    assert whole.headers["accept-ranges"] == "bytes" and whole.headers["content-length"] == "3000"
    part = await call(
        client, "GET", f"/recordings/{rid}/media", expect=206, headers={"Range": "bytes=100-199"}
    )
    assert (
        part.headers["content-range"] == "bytes 100-199/3000"
        and part.content == whole.content[100:200]
    )
    too_far = await call(
        client, "GET", f"/recordings/{rid}/media", expect=416, headers={"Range": "bytes=5000-"}
    )
    assert too_far.json()["message"] == f"Recording '{rid}' range not satisfiable. File size: 3000"
    await call(client, "GET", f"/recordings/{rid}/media", expect=422, headers={"Range": "pages=1"})

    url = await call(client, "GET", f"/recordings/{rid}/url", expect=200)
    secret = url.json()["url"].split("recordingSecret=")[1]
    anonymous = httpx.AsyncClient(base_url=str(client.base_url))
    try:
        shared = await anonymous.get(f"{API}/recordings/{rid}", params={"recordingSecret": secret})
        assert shared.status_code == 200
        bad = await anonymous.get(f"{API}/recordings/{rid}", params={"recordingSecret": "x"})
        assert bad.status_code == 400
        reference.check_response(SPEC, "GET", "/recordings/{recordingId}", 400, bad.json())
        unauthorized = await anonymous.get(f"{API}/recordings/{rid}")
        reference.check_response(SPEC, "GET", "/recordings/{recordingId}", 401, unauthorized.json())
        # A public secret ignores whatever credential comes along (anonymous access).
        with_token = await anonymous.get(
            f"{API}/recordings/{rid}",
            params={"recordingSecret": secret},
            headers=member_token("another-room", canRetrieveRecordings=True),
        )
        assert with_token.status_code == 200
    finally:
        await anonymous.aclose()

    # A room without anonymous recording access: no public link (private links still work).
    closed = await room_in_meeting(
        client, roomName="Closed", access={"anonymous": {"recording": {"enabled": False}}}
    )
    closed_rid = (await started(client, {"roomId": closed["roomId"]})).json()["recordingId"]
    refused = await call(client, "GET", f"/recordings/{closed_rid}/url", expect=403)
    assert refused.json()["message"] == (
        f"Anonymous access in room '{closed['roomId']}' is disabled for recordings"
    )
    await call(
        client, "GET", f"/recordings/{closed_rid}/url", expect=200, params={"privateAccess": "true"}
    )
    await call(
        client, "GET", f"/recordings/{closed_rid}/url", expect=422, params={"privateAccess": "yes"}
    )

    # A room member token lists its own room's recordings only, and needs the permission.
    anonymous = httpx.AsyncClient(base_url=str(client.base_url))
    try:
        mine = await anonymous.get(
            f"{API}/recordings",
            params={"roomId": room["roomId"]},
            headers=member_token(closed["roomId"], canRetrieveRecordings=True),
        )
        assert [r["recordingId"] for r in mine.json()["recordings"]] == [closed_rid]
        denied = await anonymous.get(
            f"{API}/recordings", headers=member_token(closed["roomId"], canRecord=True)
        )
        assert denied.status_code == 403
        reference.check_response(SPEC, "GET", "/recordings", 403, denied.json())
    finally:
        await anonymous.aclose()

    archive = await client.get(
        f"{API}/recordings/download", params={"recordingIds": f"{rid},{closed_rid}"}
    )
    assert archive.status_code == 200  # the active one is left out
    assert archive.headers["content-disposition"] == 'attachment; filename="recordings.zip"'
    with zipfile.ZipFile(io.BytesIO(archive.content)) as zipped:
        assert zipped.namelist() == [f"{rid}.mp4"]
    empty = await call(
        client, "GET", "/recordings/download", expect=400, params={"recordingIds": closed_rid}
    )
    assert (
        empty.json()["message"] == "None of the provided recordings are available for ZIP download"
    )

    deleted = await call(client, "DELETE", f"/recordings/{rid}", expect=200)
    assert deleted.json() == {"message": f"Recording '{rid}' deleted successfully"}
    await call(client, "DELETE", f"/recordings/{rid}", expect=404)
    await finished(client, closed_rid)
    bulk = await call(
        client, "DELETE", "/recordings", expect=200, params={"recordingIds": closed_rid}
    )
    assert bulk.json() == {
        "message": "All recordings deleted successfully",
        "deleted": [closed_rid],
        "failed": [],
    }
    mixed = await call(
        client, "DELETE", "/recordings", expect=400, params={"recordingIds": closed_rid}
    )
    assert mixed.json() == {
        "message": "1 recording(s) could not be deleted",
        "deleted": [],
        "failed": [{"recordingId": closed_rid, "error": f"Recording '{closed_rid}' not found"}],
    }
    await call(client, "DELETE", "/recordings", expect=422, params={"recordingIds": ","})


async def test_list_sorts_filters_fields_and_pages(quick_on_each_store: Any) -> None:
    client, egress = quick_on_each_store
    made: list[dict[str, Any]] = []
    for name, size, duration in (
        ("alpha", 3000, 4.0),
        ("Beta", 1000, 1.0),
        ("gamma", 4000, 3.0),
        ("beta two", 2000, 2.0),
    ):
        room = await room_in_meeting(client, roomName=name)
        egress.sizes[room["roomId"]], egress.durations[room["roomId"]] = size, duration
        rid = (await started(client, {"roomId": room["roomId"]})).json()["recordingId"]
        made.append(await finished(client, rid))
        last_start = made[-1]["startDate"]  # distinct start dates (ms): until the clock moved on
        await wait_for(lambda t=last_start: int(time.time() * 1000) > t, interval=0.002)

    ids = {r["recordingId"] for r in made}

    async def listing(**params: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        token = None
        while True:
            page = await call(
                client,
                "GET",
                "/recordings",
                expect=200,
                params={**params, "maxItems": 3, **({"nextPageToken": token} if token else {})},
            )
            body = page.json()
            items += [r for r in body["recordings"] if r["recordingId"] in ids]
            token = body["pagination"].get("nextPageToken")
            assert body["pagination"]["isTruncated"] is (token is not None)
            if token is None:
                return items

    for field in ("startDate", "roomName", "duration", "size"):
        for order in ("asc", "desc"):
            got = await listing(sortField=field, sortOrder=order)
            expected = sorted(
                made, key=lambda r: (r[field], r["recordingId"]), reverse=order == "desc"
            )
            assert [r["recordingId"] for r in got] == [r["recordingId"] for r in expected], (
                field,
                order,
            )
    default = await listing()
    assert [r["startDate"] for r in default] == sorted((r["startDate"] for r in made), reverse=True)

    async def names(**params: Any) -> list[str]:
        return sorted(r["roomName"] for r in await listing(**params))

    assert await names(roomName="alpha") == ["alpha"]
    assert await names(roomName="beta") == []  # exact and case-sensitive by default
    assert await names(
        roomName="bet", roomNameMatchMode="prefix", roomNameCaseInsensitive="true"
    ) == ["Beta", "beta two"]
    assert await names(roomName="amm", roomNameMatchMode="partial") == ["gamma"]
    assert await names(roomName="^(al|ga)", roomNameMatchMode="regex") == ["alpha", "gamma"]
    assert await names(
        roomName="^b", roomNameMatchMode="regex", roomNameCaseInsensitive="true"
    ) == ["Beta", "beta two"]
    assert await names(status="active") == []
    selected = await listing(fields="recordingId,size")
    assert all(set(r) == {"recordingId", "size"} for r in selected)
    for params in (
        {"sortField": "endDate"},
        {"sortOrder": "up"},
        {"maxItems": 0},
        {"maxItems": 101},
        {"status": "done"},
        {"roomName": "(", "roomNameMatchMode": "regex"},
        {"roomNameCaseInsensitive": "1"},
        {"nextPageToken": "not-a-token"},
    ):
        await call(client, "GET", "/recordings", expect=422, params=params)
