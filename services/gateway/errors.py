"""Errors as JSON: one table from command error kinds to HTTP statuses."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from contracts.commands import CommandError, ErrorCode
from services.runtime.commands import field_path
from services.runtime.logging import get_logger

log = get_logger("meetplane.gateway")

HTTP_STATUS = {
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.CONFLICT: 409,
    ErrorCode.INVALID: 422,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.UNAVAILABLE: 503,
}


# OpenVidu Meet names an error by its area ("Room Error"); meetplane's services name it
# by a machine code ("room_not_found").  The body carries both: `error` as OpenVidu says
# it, `code` (a meetplane extension the v3.8.0 error schema allows) for programs.
AREAS = (
    ("room_member_", "Room Member Error"),
    ("member_", "Room Member Error"),
    ("room_", "Room Error"),
    ("recording_", "Recording Error"),
    ("egress_", "Recording Error"),
    ("meeting_", "Meeting Error"),
    ("participant_", "Participant Error"),
    ("join_", "Meeting Error"),
    ("user_", "User Error"),
    ("webhook_", "Webhook Error"),
    ("invalid_secret", "Room Error"),
)
# Room deletion outcomes keep their code as the error name, as v3.8.0 does.
DELETION_CODES = frozenset(
    {
        "room_has_active_meeting",
        "room_has_recordings",
        "room_with_active_meeting_has_recordings",
        "room_with_active_meeting_has_recordings_cannot_schedule_deletion",
        "room_with_recordings_has_active_meeting",
    }
)
STATUS_NAMES = {
    400: "Bad Request",
    401: "Authentication Error",
    403: "Authorization Error",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Payload Too Large",
    416: "Range Not Satisfiable",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}
VALIDATION_MESSAGE = "Invalid request"


def error_name(code: str, status: int) -> str:
    """The OpenVidu error name for a meetplane error code answered with `status`."""
    if status == 422:
        return STATUS_NAMES[422]
    if code in DELETION_CODES:
        return code
    for prefix, name in AREAS:
        if code.startswith(prefix):
            return name
    return STATUS_NAMES.get(status, "Error")


class ApiError(Exception):
    """An error the API returns as `{"error", "message"}` (`details` on 422, `code` always)."""

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.details = details or []
        self.headers = headers
        self.code = code

    @classmethod
    def from_command(cls, error: CommandError) -> ApiError:
        """Map a service's typed error: OpenVidu's name, the service's code."""
        status = HTTP_STATUS[error.kind]
        details = [d.model_dump() for d in error.details]
        if status == 422:
            if not details:
                details = [{"field": "body", "message": error.message}]
            return cls(422, STATUS_NAMES[422], VALIDATION_MESSAGE, details, code=error.error)
        return cls(
            status, error_name(error.error, status), error.message, details, code=error.error
        )

    @classmethod
    def invalid(cls, field: str, message: str) -> ApiError:
        """A 422 about one field."""
        return cls(
            422,
            STATUS_NAMES[422],
            VALIDATION_MESSAGE,
            [{"field": field, "message": message}],
            code="invalid_request",
        )


def error_body(
    error: str,
    message: str,
    details: list[dict[str, Any]] | None = None,
    code: str | None = None,
) -> dict[str, Any]:
    """The JSON error shape: `details` only when there are field errors."""
    body: dict[str, Any] = {"error": error, "message": message}
    if details:
        body["details"] = details
    if code:
        body["code"] = code
    return body


def _message(err: Mapping[str, Any]) -> str:
    # pydantic prefixes errors raised by validators ("Value error, ..."); clients see the text.
    text = str(err.get("msg", "invalid"))
    for prefix in ("Value error, ", "Assertion failed, "):
        text = text.removeprefix(prefix)
    return text


def _merge(details: list[dict[str, Any]]) -> list[dict[str, Any]]:
    merged: dict[str, list[str]] = {}
    for detail in details:
        messages = merged.setdefault(detail["field"], [])
        if detail["message"] not in messages:
            messages.append(detail["message"])
    return [{"field": f, "message": " or ".join(m)} for f, m in merged.items()]


def install_error_handlers(app: FastAPI) -> None:
    """Every error leaves as JSON with a 4xx/5xx status; nothing leaks as HTML or a trace."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(
            error_body(exc.error, exc.message, exc.details, exc.code),
            exc.status,
            headers=exc.headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {
                "field": "body"
                if err.get("type") == "json_invalid"
                else field_path(err.get("loc", ())),
                "message": _message(err),
            }
            for err in exc.errors()
        ]
        body = error_body(STATUS_NAMES[422], VALIDATION_MESSAGE, _merge(details), "invalid_request")
        return JSONResponse(body, 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized"}.get(
            exc.status_code, "http_error"
        )
        name = STATUS_NAMES.get(exc.status_code, "Error")
        return JSONResponse(
            error_body(name, str(exc.detail), code=code),
            exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("gateway.unexpected_error", path=request.url.path)
        return JSONResponse(
            error_body(STATUS_NAMES[500], "Unexpected error occurred", code="internal_error"),
            500,
        )
