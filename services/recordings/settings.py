"""Settings of the recordings service (storage settings: `storage.StorageSettings`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.runtime.settings import RuntimeSettings


class RecordingsSettings(RuntimeSettings):
    """`MEETPLANE_*` settings the recordings service reads."""

    model_config = SettingsConfigDict(env_prefix="MEETPLANE_", extra="ignore")

    media_backend: Literal["local", "livekit"] = "local"
    recording_max_seconds: float = Field(default=3600.0, gt=0)
    # A recording still starting (ending) after this long is failed and its room freed.
    recording_start_timeout: float = Field(default=30.0, gt=0)
    recording_end_timeout: float = Field(default=600.0, gt=0)
    recording_reconcile_interval: float = Field(default=10.0, gt=0)
    # Fault injection for crash tests: while this file exists, objects of deleted
    # recordings are not removed yet (kill the service between metadata and media delete).
    recordings_hold_media_delete_file: str | None = None
