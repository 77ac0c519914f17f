"""Settings of the rooms service (on top of the shared runtime settings)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from services.runtime.settings import RuntimeSettings


class RoomsSettings(RuntimeSettings):
    """`MEETPLANE_*` settings the rooms service reads."""

    model_config = SettingsConfigDict(env_prefix="MEETPLANE_", extra="ignore")

    rooms_snapshot_interval: int = 100
