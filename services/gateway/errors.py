"""Errors as JSON: one table from command error kinds to HTTP statuses."""

from __future__ import annotations

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


class ApiError(Exception):
    """An error the API returns as `{"error", "message", "details"}`."""

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.details = details or []
        self.headers = headers

    @classmethod
    def from_command(cls, error: CommandError) -> ApiError:
        """Map a service's typed error."""
        return cls(
            HTTP_STATUS[error.kind],
            error.error,
            error.message,
            [d.model_dump() for d in error.details],
        )

    @classmethod
    def invalid(cls, field: str, message: str) -> ApiError:
        """A 422 about one field."""
        return cls(
            422, "invalid_request", f"{field}: {message}", [{"field": field, "message": message}]
        )


def error_body(
    error: str, message: str, details: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The JSON error shape."""
    return {"error": error, "message": message, "details": details or []}


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
            error_body(exc.error, exc.message, exc.details), exc.status, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {
                "field": "body"
                if err.get("type") == "json_invalid"
                else field_path(err.get("loc", ())),
                "message": err.get("msg", "invalid"),
            }
            for err in exc.errors()
        ]
        details = _merge(details)
        message = "; ".join(f"{d['field']}: {d['message']}" for d in details)
        return JSONResponse(error_body("invalid_request", message, details), 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized"}.get(
            exc.status_code, "http_error"
        )
        return JSONResponse(
            error_body(code, str(exc.detail)),
            exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("gateway.unexpected_error", path=request.url.path)
        return JSONResponse(
            error_body("internal_error", "unexpected error; see the gateway log"), 500
        )
