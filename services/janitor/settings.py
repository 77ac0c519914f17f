"""Settings of the janitor."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.runtime.settings import RuntimeSettings


class JanitorSettings(RuntimeSettings):
    """`MEETPLANE_*` settings the janitor reads (durations in seconds)."""

    model_config = SettingsConfigDict(env_prefix="MEETPLANE_", extra="ignore")

    empty_meeting_timeout: float = Field(default=300.0, ge=0, description="seconds")
    housekeeping_interval: float = Field(default=60.0, gt=0, description="seconds")
    orphan_sweep_interval: float = Field(default=3600.0, gt=0, description="seconds")
    orphan_min_age: float = Field(default=3600.0, ge=0, description="seconds")
    timer_batch: int = Field(default=10_000, ge=1, le=50_000)
    timer_lookahead_ms: int = Field(default=1000, ge=0, le=10_000)
    timer_lease_seconds: float = Field(default=30.0, gt=0)
    timer_poll_seconds: float = Field(default=0.5, gt=0)
