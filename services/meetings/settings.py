"""Settings of the meetings service."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from services.runtime.settings import RuntimeSettings


class MeetingsSettings(RuntimeSettings):
    """`MEETPLANE_*` settings the meetings service reads (media settings: `media.MediaSettings`)."""

    model_config = SettingsConfigDict(env_prefix="MEETPLANE_", extra="ignore")
