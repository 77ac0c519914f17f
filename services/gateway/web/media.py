"""Recording playback for the pages: the API's own media route, with the browser's credential.

A `<video>` element cannot send headers, so the pages serve the file at their own address
with the credential the browser holds (a cookie, or the share secret in the query) and
pass the request on to the API's `GET /recordings/{recordingId}/media` in-process: its
policy row decides, and its bytes (with `Range`) are streamed on unbuffered.
"""

from __future__ import annotations

from fastapi import Request, Response

from services.gateway.web.apiclient import PUBLIC_API, Api


async def recording_media(
    request: Request,
    recording_id: str,
    headers: dict[str, str],
    secret: str | None = None,
    attachment: bool = False,
) -> Response:
    """The recording's media for a caller the API lets read it (ApiError otherwise)."""
    wanted = {"Range": request.headers["range"]} if "range" in request.headers else {}
    route = "download" if attachment else "media"
    return await Api(request, headers).stream(
        f"{PUBLIC_API}/recordings/{recording_id}/{route}",
        params={"recordingSecret": secret},
        headers=wanted,
    )
