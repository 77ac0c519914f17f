"""`/recordings…`: OpenVidu Meet v3.8.0's recording routes; media straight from S3.

The gateway never imports the recordings service: it asks over NATS where a
recording's media is (a short-lived presigned S3 URL, size, type) and streams it
from S3 itself, forwarding the byte range, so memory stays flat whatever the size.
`GET /recordings/{id}/download` is the 3.9 line's download route, kept as an extension.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any, Literal

import httpx
from fastapi import APIRouter, Header, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from contracts.commands import recordings as cmd
from services.gateway.api import PUBLIC_API
from services.gateway.auth import principal
from services.gateway.errors import ApiError
from services.gateway.params import StrictQueryBool
from services.gateway.recordings_access import (
    anonymous_disabled,
    authorize_read,
    link_expired,
    recording_ids,
    selected_fields,
    shape,
    valid_recording_id,
)
from services.gateway.rpc import Rpc, RpcDep
from services.gateway.schemas import (
    BulkRecordingsDeleted,
    Message,
    Recording,
    RecordingList,
    RecordingUrl,
    documented,
)
from services.gateway.scopes import recording_rooms, split_recordings

router = APIRouter(prefix="/recordings", tags=["recordings"])
RecordingIdPath = Annotated[
    str,
    Path(min_length=1, max_length=cmd.RECORDING_ID_MAX),
    AfterValidator(valid_recording_id),
]
XFields = Annotated[str | None, Header(alias="X-Fields", max_length=1000)]
FieldsQuery = Annotated[str | None, Query(max_length=1000)]
SecretQuery = Annotated[str | None, Query(alias="recordingSecret", max_length=200)]
RANGE = re.compile(r"^bytes=(\d{0,18})-(\d{0,18})$")  # bounded: no 4000-digit ints
CACHE_CONTROL = "public, max-age=3600"


class StartBody(BaseModel):
    """POST /recordings body: the room, and optionally this recording's layout/encoding."""

    model_config = ConfigDict(extra="forbid", strict=True)

    roomId: Annotated[str, Field(min_length=1, max_length=100)]
    config: cmd.RecordingOverride | None = None


def _location(request: Request, recording_id: str) -> str:
    return f"{request.app.state.settings.base_url()}{PUBLIC_API}/recordings/{recording_id}"


@router.post("", summary="Start recording a room", **documented(Recording, 201, errors=(404, 409)))
async def start_recording(
    body: StartBody, request: Request, response: Response, rpc: RpcDep, x_fields: XFields = None
) -> dict[str, Any]:
    record = await rpc(
        "recordings", "start", cmd.StartRecording(roomId=body.roomId, config=body.config)
    )
    response.headers["Location"] = _location(request, record["recordingId"])
    return shape(record, selected_fields(x_fields))


@router.post(
    "/{recordingId}/stop",
    summary="Stop a recording (202: the file is being finalised)",
    **documented(Recording, 202, errors=(404, 409)),
)
async def stop_recording(
    recordingId: RecordingIdPath,
    request: Request,
    response: Response,
    rpc: RpcDep,
    fields: FieldsQuery = None,
    x_fields: XFields = None,
) -> dict[str, Any]:
    record = await rpc("recordings", "stop", cmd.RecordingRef(recordingId=recordingId))
    response.headers["Location"] = _location(request, recordingId)
    return shape(record, selected_fields(fields, x_fields))


@router.get("", summary="List recordings", **documented(RecordingList))
async def list_recordings(
    request: Request,
    rpc: RpcDep,
    roomId: Annotated[str | None, Query(max_length=100)] = None,
    roomName: Annotated[str | None, Query(max_length=200)] = None,
    roomNameMatchMode: cmd.MatchMode = "exact",
    roomNameCaseInsensitive: StrictQueryBool = False,
    status: cmd.RecordingStatus | None = None,
    fields: FieldsQuery = None,
    maxItems: Annotated[int, Query(ge=1, le=100)] = 10,
    nextPageToken: Annotated[str | None, Query(max_length=500)] = None,
    sortField: cmd.SortField = "startDate",
    sortOrder: Literal["asc", "desc"] = "desc",
    x_fields: XFields = None,
) -> dict[str, Any]:
    rooms = await recording_rooms(request, "canRetrieveRecordings")
    if rooms is not None and principal(request).kind == "member":
        roomId = None  # v3.8.0: a member token's own room, whatever the filter says
    if roomName is not None and roomNameMatchMode == "regex":
        try:
            re.compile(roomName)
        except re.error:
            raise ApiError.invalid("roomName", "Invalid regular expression pattern") from None
    page = await rpc.retrying(
        "recordings",
        "list",
        cmd.ListRecordings(
            roomId=roomId,
            roomName=roomName,
            roomNameMatchMode=roomNameMatchMode,
            roomNameCaseInsensitive=roomNameCaseInsensitive,
            roomIds=sorted(rooms) if rooms is not None else None,
            status=status,
            maxItems=maxItems,
            nextPageToken=nextPageToken,
            sortField=sortField,
            sortOrder=sortOrder,
        ),
    )
    selected = selected_fields(fields, x_fields)
    pagination: dict[str, Any] = {"isTruncated": page["isTruncated"]}
    if page["nextPageToken"] is not None:
        pagination["nextPageToken"] = page["nextPageToken"]
    pagination["maxItems"] = page["maxItems"]
    return {
        "recordings": [shape(r, selected) for r in page["items"]],
        "pagination": pagination,
    }


RecordingIdsQuery = Annotated[str, Query(max_length=20_000)]


@router.delete(
    "",
    summary="Delete several recordings",
    **documented(BulkRecordingsDeleted, 200, (400, BulkRecordingsDeleted)),
)
async def bulk_delete(
    request: Request, rpc: RpcDep, response: Response, recordingIds: RecordingIdsQuery
) -> dict[str, Any]:
    allowed, refused = await split_recordings(
        request, recording_ids(recordingIds), "canDeleteRecordings"
    )
    result: dict[str, Any] = {"deleted": [], "failed": []}
    if allowed:
        result = await rpc(
            "recordings", "bulk_delete", cmd.BulkDeleteRecordings(recordingIds=allowed)
        )
    failed = [{"recordingId": f["recordingId"], "error": f["message"]} for f in result["failed"]]
    failed += [{"recordingId": i, "error": "Insufficient permissions"} for i in refused]
    if not failed:
        return {
            "message": "All recordings deleted successfully",
            "deleted": result["deleted"],
            "failed": [],
        }
    response.status_code = 400
    return {
        "message": f"{len(failed)} recording(s) could not be deleted",
        "deleted": result["deleted"],
        "failed": failed,
    }


@router.get(
    "/download",
    summary="Download several recordings as a ZIP",
    **documented(None, errors=(400,), media="application/zip"),
)
async def download_zip(
    request: Request, rpc: RpcDep, recordingIds: RecordingIdsQuery
) -> StreamingResponse:
    from zipstream import ZipStream

    allowed, _ = await split_recordings(
        request, recording_ids(recordingIds), "canRetrieveRecordings"
    )
    locations = []
    for recording_id in allowed:
        try:
            locations.append(
                await rpc.retrying(
                    "recordings", "media", cmd.RecordingRef(recordingId=recording_id)
                )
            )
        except ApiError as exc:
            if exc.status not in (404, 409):
                raise
    if not locations:
        raise ApiError(
            400,
            "Recording Error",
            "None of the provided recordings are available for ZIP download",
        )
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


@router.get(
    "/{recordingId}",
    summary="Get a recording (credentials or a share-link secret)",
    **documented(Recording, errors=(400, 404)),
)
async def get_recording(
    recordingId: RecordingIdPath,
    request: Request,
    rpc: RpcDep,
    recordingSecret: SecretQuery = None,
    fields: FieldsQuery = None,
    x_fields: XFields = None,
) -> dict[str, Any]:
    await authorize_read(request, rpc, recordingId, recordingSecret)
    record = await rpc.retrying("recordings", "get", cmd.RecordingRef(recordingId=recordingId))
    return shape(record, selected_fields(fields, x_fields))


@router.delete(
    "/{recordingId}", summary="Delete a recording", **documented(Message, errors=(404, 409))
)
async def delete_recording(recordingId: RecordingIdPath, rpc: RpcDep) -> dict[str, Any]:
    await rpc("recordings", "delete", cmd.RecordingRef(recordingId=recordingId))
    return {"message": f"Recording '{recordingId}' deleted successfully"}


@router.get(
    "/{recordingId}/url",
    summary="A shareable recording link",
    **documented(RecordingUrl, errors=(404,)),
)
async def share_url(
    recordingId: RecordingIdPath,
    request: Request,
    rpc: RpcDep,
    privateAccess: StrictQueryBool = False,
) -> dict[str, Any]:
    ref = cmd.RecordingRef(recordingId=recordingId)
    secrets = cmd.AccessSecrets.model_validate(
        await rpc.retrying("recordings", "access_secrets", ref)
    )
    if link_expired(request, secrets):
        # The old link outlived MEETPLANE_SHARE_LINK_MAX_SECONDS: hand out a new one.
        await rpc("recordings", "revoke_links", ref)
        secrets = cmd.AccessSecrets.model_validate(
            await rpc.retrying("recordings", "access_secrets", ref)
        )
    if not privateAccess and not secrets.anonymousAccess:
        raise anonymous_disabled(secrets.roomId)
    secret = secrets.privateSecret if privateAccess else secrets.publicSecret
    base = request.app.state.settings.base_url()
    return {"url": f"{base}/recording/{recordingId}?recordingSecret={secret}"}


@router.delete(
    "/{recordingId}/url",
    summary="Revoke the recording's share links (meetplane extension)",
    **documented(Message, errors=(404,)),
)
async def revoke_share_links(recordingId: RecordingIdPath, rpc: RpcDep) -> dict[str, Any]:
    """New secrets for the recording: every link given out so far stops working."""
    await rpc("recordings", "revoke_links", cmd.RecordingRef(recordingId=recordingId))
    return {"message": f"Share links of recording '{recordingId}' revoked"}


def parse_range(header: str, size: int, recording_id: str) -> tuple[int, int]:
    """One byte range → (start, end inclusive).

    422 when it is not `bytes=start-end` (or a suffix `bytes=-n`); 416 when it
    does not fit the file.
    """
    match = RANGE.match(header.strip())
    if not match or match.groups() == ("", ""):
        raise ApiError.invalid("range", "Invalid range header format. Expected: bytes=start-end")
    unsatisfiable = ApiError(
        416,
        "Recording Error",
        f"Recording '{recording_id}' range not satisfiable. File size: {size}",
        headers={"Content-Range": f"bytes */{size}"},
    )
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


async def media_response(
    recording_id: str, rpc: Rpc, range_header: str | None, attachment: bool
) -> Response:
    location = await rpc.retrying("recordings", "media", cmd.RecordingRef(recordingId=recording_id))
    size = int(location["size"])
    headers = {
        "Accept-Ranges": "bytes",
        "Content-Type": location["contentType"],
        "Cache-Control": CACHE_CONTROL,
    }
    if attachment:
        headers["Content-Disposition"] = f'attachment; filename="{location["filename"]}"'
    if size == 0:
        return Response(status_code=200, headers=headers)
    if range_header:
        start, end = parse_range(range_header, size, recording_id)
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        status = 206
    else:
        start, end, status = 0, size - 1, 200
    headers["Content-Length"] = str(end - start + 1)
    return StreamingResponse(
        _stream(location["url"], start, end), status_code=status, headers=headers
    )


RangeHeader = Annotated[str | None, Header(alias="Range", max_length=100)]


@router.get(
    "/{recordingId}/media",
    summary="Stream the media (HTTP Range)",
    **documented(None, 200, (206, None), errors=(400, 404, 409, 416), media="video/mp4"),
)
async def media(
    recordingId: RecordingIdPath,
    request: Request,
    rpc: RpcDep,
    range_header: RangeHeader = None,
    recordingSecret: SecretQuery = None,
) -> Response:
    await authorize_read(request, rpc, recordingId, recordingSecret)
    return await media_response(recordingId, rpc, range_header, attachment=False)


@router.get(
    "/{recordingId}/download",
    summary="Download the file (3.9 line)",
    **documented(None, 200, (206, None), errors=(400, 404, 409, 416), media="video/mp4"),
)
async def download(
    recordingId: RecordingIdPath,
    request: Request,
    rpc: RpcDep,
    range_header: RangeHeader = None,
    recordingSecret: SecretQuery = None,
) -> Response:
    await authorize_read(request, rpc, recordingId, recordingSecret)
    return await media_response(recordingId, rpc, range_header, attachment=True)
