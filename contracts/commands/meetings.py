"""Commands of the meetings service (`meetplane.cmd.meetings.<verb>`).

The meetings service owns this module; other services use only the commands
marked as cross-service.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

SERVICE = "meetings"


class EndEmptyMeetings(BaseModel):
    """Cross-service (janitor → meetings): end meetings with no participant for `idleMs`.

    Verb `end_empty`.  Idempotent: a meeting already ended is not counted again.
    """

    idleMs: Annotated[int, Field(ge=0)]


class EndEmptyMeetingsResult(BaseModel):
    """Which meetings were ended (reason `empty_timeout`)."""

    ended: list[str] = Field(default_factory=list)
    checked: int = 0
