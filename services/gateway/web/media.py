"""Recording playback for the pages: authorized by the API, streamed like the API's media route.

A `<video>` element cannot send headers, so the pages serve the file at their own address
with the credential the browser holds (a cookie, or the share secret in the query).  The
read is first asked of the API's `GET /recordings/{recordingId}` with that credential:
the same policy row as `GET /recordings/{recordingId}/media` decides.  The bytes then
come from the API's own streaming code, honouring `Range`.
"""

from __future__ import annotations

from fastapi import Request, Response

from services.gateway.routes.recordings import media_response
from services.gateway.web.apiclient import PUBLIC_API, Api


async def recording_media(
    request: Request,
    recording_id: str,
    headers: dict[str, str],
    secret: str | None = None,
    attachment: bool = False,
) -> Response:
    """The recording's media for a caller the API lets read it (ApiError otherwise)."""
    await Api(request, headers).get(
        f"{PUBLIC_API}/recordings/{recording_id}", recordingSecret=secret, fields="recordingId"
    )
    return await media_response(
        recording_id, request.app.state.rpc, request.headers.get("Range"), attachment
    )
