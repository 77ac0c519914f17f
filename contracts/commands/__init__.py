"""Request/reply commands: subjects, the reply envelope and typed errors.

Every command goes to `meetplane.cmd.<service>.<verb>` and is answered by one
member of the service's queue group with a `Reply`: a result or a `CommandError`.
The gateway maps error codes to HTTP status codes with one table.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

COMMAND_PREFIX = "meetplane.cmd"


def command_subject(service: str, verb: str) -> str:
    """`meetplane.cmd.<service>.<verb>`."""
    return f"{COMMAND_PREFIX}.{service}.{verb}"


def queue_group(service: str) -> str:
    """The queue group of a service's command handlers: one replica answers."""
    return f"meetplane-{service}"


class ErrorCode(StrEnum):
    """Kinds of command failure; `CommandError.error` refines them."""

    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    INVALID = "invalid"
    FORBIDDEN = "forbidden"
    UNAUTHORIZED = "unauthorized"
    UNAVAILABLE = "unavailable"


class ErrorDetail(BaseModel):
    """One problem with a request, naming the field."""

    field: str
    message: str


class CommandError(BaseModel):
    """A typed failure: `kind` picks the HTTP status, `error` is the API error code."""

    kind: ErrorCode
    error: str
    message: str
    details: list[ErrorDetail] = Field(default_factory=list)


class Reply(BaseModel):
    """Every command reply: `ok` with a `result`, or not `ok` with an `error`."""

    ok: bool
    result: Any = None
    error: CommandError | None = None

    @classmethod
    def success(cls, result: Any = None) -> Reply:
        """A successful reply."""
        return cls(ok=True, result=result)

    @classmethod
    def failure(cls, error: CommandError) -> Reply:
        """A failed reply."""
        return cls(ok=False, error=error)


class Page(BaseModel):
    """A page of a list: items and the token for the next page (None on the last)."""

    items: list[Any]
    nextPageToken: str | None = None
    isTruncated: bool = False
    maxItems: int


class Ping(BaseModel):
    """`meetplane.cmd.<service>.ping` request; answered with the service name."""

    pass


class Pong(BaseModel):
    """Ping reply."""

    service: str
    instance: str


class DeadLetterCommand(BaseModel):
    """`meetplane.cmd.<service>.dlq_retry` / `dlq_drop`: parked messages of one consumer.

    `seq` (a dead-letter stream sequence) picks one message (retry: with the earlier
    parked messages of its aggregate); without it, every parked message of the consumer.
    """

    consumer: str = Field(min_length=1, max_length=100)
    seq: int | None = Field(default=None, ge=1, le=2**63 - 1)


class RebuildViews(BaseModel):
    """`meetplane.cmd.<service>.rebuild_views`: replay the log into the service's read models."""

    view: str | None = Field(default=None, max_length=100)
