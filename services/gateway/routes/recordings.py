"""`/api/v1/recordings…`: recordings through the recordings service, media straight from S3.

The gateway never imports the recordings service: it asks over NATS where a
recording's media is (a short-lived presigned S3 URL, size, type) and streams it
from S3 itself, forwarding the byte range, so memory stays flat whatever the size.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any, Literal

import httpx
from fastapi import APIRouter, Header, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from contracts.commands import recordings as cmd
from services.gateway.api import PUBLIC_API
from services.gateway.auth import principal
from services.gateway.errors import ApiError
from services.gateway.rpc import Rpc, RpcDep
from services.gateway.scopes import recording_rooms, split_recordings

router = APIRouter(prefix="/recordings", tags=["recordings"])
RecordingIdPath = Annotated[str, Path(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_\-]+$")]
RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class StartBody(BaseModel):
    """POST /recordings body."""

    model_config = ConfigDict(extra="forbid")

    roomId: Annotated[str, Field(min_length=1, max_length=100)]


def _shape(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if v is not None}


@router.post("", status_code=201, summary="Start recording a room")
async def start_recording(body: StartBody, response: Response, rpc: RpcDep) -> dict[str, Any]:
    record = await rpc("recordings", "start", cmd.StartRecording(roomId=body.roomId))
    response.headers["Location"] = f"{PUBLIC_API}/recordings/{record['recordingId']}"
    return _shape(record)


@router.post("/{recordingId}/stop", status_code=202, summary="Stop")
async def stop_recording(recordingId: RecordingIdPath, rpc: RpcDep) -> dict[str, Any]:
    return _shape(await rpc("recordings", "stop", cmd.RecordingRef(recordingId=recordingId)))


@router.get("", summary="List recordings")
async def list_recordings(
    request: Request,
    rpc: RpcDep,
    roomId: Annotated[str | None, Query(max_length=100)] = None,
    status: Literal["starting", "active", "ending", "complete", "failed", "aborted"] | None = None,
    maxItems: Annotated[int, Query(ge=1, le=100)] = 10,
    nextPageToken: Annotated[str | None, Query(max_length=500)] = None,
    sortOrder: Literal["asc", "desc"] = "desc",
) -> dict[str, Any]:
    rooms = await recording_rooms(request, "canRetrieveRecordings")
    if rooms is not None and principal(request).kind == "member":
        roomId = None  # v3.8.0: a member token's own room, whatever the filter says
    page = await rpc.retrying(
        "recordings",
        "list",
        cmd.ListRecordings(
            roomId=roomId,
            roomIds=sorted(rooms) if rooms is not None else None,
            status=status,
            maxItems=maxItems,
            nextPageToken=nextPageToken,
            sortOrder=sortOrder,
        ),
    )
    return {
        "recordings": [_shape(r) for r in page["items"]],
        "pagination": {k: page[k] for k in ("isTruncated", "nextPageToken", "maxItems")},
    }


def _ids(raw: str) -> list[str]:
    ids = [i.strip() for i in raw.split(",") if i.strip()]
    if not ids or len(ids) > 100:
        raise ApiError.invalid("recordingIds", "between 1 and 100 recording ids")
    return ids


@router.delete("", summary="Delete several recordings")
async def bulk_delete(
    request: Request,
    rpc: RpcDep,
    response: Response,
    recordingIds: Annotated[str, Query(max_length=20_000)],
) -> dict[str, Any]:
    allowed, refused = await split_recordings(request, _ids(recordingIds), "canDeleteRecordings")
    result: dict[str, Any] = {"deleted": [], "failed": []}
    if allowed:
        result = await rpc(
            "recordings", "bulk_delete", cmd.BulkDeleteRecordings(recordingIds=allowed)
        )
    result["failed"] += [
        {"recordingId": i, "error": "forbidden", "message": "not permitted"} for i in refused
    ]
    if result["failed"]:
        response.status_code = 400
    return result


@router.get("/download", summary="Download several recordings as a ZIP")
async def download_zip(
    request: Request, rpc: RpcDep, recordingIds: Annotated[str, Query(max_length=20_000)]
) -> StreamingResponse:
    from zipstream import ZipStream

    allowed, _ = await split_recordings(request, _ids(recordingIds), "canRetrieveRecordings")
    if not allowed:
        raise ApiError(
            400, "Recording Error", "None of the provided recordings are available for ZIP download"
        )
    locations = [await rpc("recordings", "media", cmd.RecordingRef(recordingId=i)) for i in allowed]
    archive = ZipStream(sized=False)
    for location in locations:
        archive.add(_s3_chunks(location["url"]), arcname=location["filename"])
    return StreamingResponse(
        iter(archive),
        media_type="application/zip",
        headers={"Content-Disposition": 'attachment; filename="recordings.zip"'},
    )


def _s3_chunks(url: str) -> Iterator[bytes]:
    # Sync: zipstream pulls it from Starlette's thread pool, one file at a time.
    with httpx.Client(timeout=60) as client, client.stream("GET", url) as upstream:
        upstream.raise_for_status()
        yield from upstream.iter_bytes(256 * 1024)


@router.get("/{recordingId}", summary="Get a recording")
async def get_recording(recordingId: RecordingIdPath, rpc: RpcDep) -> dict[str, Any]:
    return _shape(
        await rpc.retrying("recordings", "get", cmd.RecordingRef(recordingId=recordingId))
    )


@router.delete("/{recordingId}", summary="Delete a recording")
async def delete_recording(recordingId: RecordingIdPath, rpc: RpcDep) -> dict[str, Any]:
    await rpc("recordings", "delete", cmd.RecordingRef(recordingId=recordingId))
    return {"message": f"Recording '{recordingId}' deleted"}


def share_signature(api_key: str, recording_id: str, expires: int) -> str:
    """HMAC of the recording id and expiry with the API key."""
    return hmac.new(
        api_key.encode(), f"{recording_id}:{expires}".encode(), hashlib.sha256
    ).hexdigest()


@router.get("/{recordingId}/url", summary="A shareable media link")
async def share_url(
    recordingId: RecordingIdPath,
    request: Request,
    rpc: RpcDep,
    expiresIn: Annotated[int | None, Query(ge=1, le=365 * 24 * 3600)] = None,
) -> dict[str, Any]:
    await rpc.retrying("recordings", "get", cmd.RecordingRef(recordingId=recordingId))
    settings = request.app.state.settings
    expires = int(time.time()) + expiresIn if expiresIn else 0
    secret = share_signature(settings.api_key, recordingId, expires)
    path = f"{PUBLIC_API}/recordings/{recordingId}/media?secret={secret}&expires={expires}"
    url = f"{settings.base_url()}{path}"
    return {"url": url, "expiresAt": expires * 1000 if expires else None}


async def _authorise_media(
    request: Request, recording_id: str, secret: str | None, expires: int
) -> None:
    if secret is None:
        return  # a credential was checked by the policy table
    expected = share_signature(request.app.state.settings.api_key, recording_id, expires)
    if not hmac.compare_digest(secret.encode(), expected.encode()):
        raise ApiError(401, "invalid_secret", "the share link is not valid")
    if expires and time.time() > expires:
        raise ApiError(401, "link_expired", "the share link has expired")


def parse_range(header: str, size: int) -> tuple[int, int]:
    """One byte range → (start, end inclusive); ApiError 416 when malformed or unsatisfiable."""
    match = RANGE.match(header.strip())
    unsatisfiable = ApiError(
        416,
        "range_not_satisfiable",
        f"cannot serve {header!r} of {size} bytes",
        headers={"Content-Range": f"bytes */{size}"},
    )
    if not match or match.groups() == ("", ""):
        raise unsatisfiable
    first, last = match.groups()
    if first == "":
        length = int(last)
        if length == 0:
            raise unsatisfiable
        return max(0, size - length), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or (last and int(last) < start):
        raise unsatisfiable
    return start, end


async def _stream(url: str, start: int, end: int) -> AsyncIterator[bytes]:
    async with httpx.AsyncClient(timeout=60) as client:
        headers = {"Range": f"bytes={start}-{end}"}
        async with client.stream("GET", url, headers=headers) as upstream:
            if upstream.status_code not in (200, 206):
                raise ApiError(
                    502, "storage_error", f"object storage answered {upstream.status_code}"
                )
            async for chunk in upstream.aiter_bytes(256 * 1024):
                yield chunk


async def _media(
    recording_id: str, request: Request, rpc: Rpc, range_header: str | None, attachment: bool
) -> Response:
    location = await rpc.retrying("recordings", "media", cmd.RecordingRef(recordingId=recording_id))
    size = int(location["size"])
    headers = {"Accept-Ranges": "bytes", "Content-Type": location["contentType"]}
    if attachment:
        headers["Content-Disposition"] = f'attachment; filename="{location["filename"]}"'
    if size == 0:
        return Response(status_code=200, headers=headers)
    if range_header:
        start, end = parse_range(range_header, size)
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        status = 206
    else:
        start, end, status = 0, size - 1, 200
    headers["Content-Length"] = str(end - start + 1)
    return StreamingResponse(
        _stream(location["url"], start, end), status_code=status, headers=headers
    )


@router.get("/{recordingId}/media", summary="Stream the media (HTTP Range); API key or share link")
async def media(
    recordingId: RecordingIdPath,
    request: Request,
    rpc: RpcDep,
    range_header: Annotated[str | None, Header(alias="Range")] = None,
    secret: Annotated[str | None, Query(max_length=128)] = None,
    expires: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    await _authorise_media(request, recordingId, secret, expires)
    return await _media(recordingId, request, rpc, range_header, attachment=False)


@router.get("/{recordingId}/download", summary="Download the file")
async def download(
    recordingId: RecordingIdPath,
    request: Request,
    rpc: RpcDep,
    range_header: Annotated[str | None, Header(alias="Range")] = None,
) -> Response:
    return await _media(recordingId, request, rpc, range_header, attachment=True)
