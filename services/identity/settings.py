"""Settings of the identity service (on top of the shared runtime settings)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.runtime.settings import RuntimeSettings


class IdentitySettings(RuntimeSettings):
    """`MEETPLANE_*` settings the identity service reads."""

    model_config = SettingsConfigDict(env_prefix="MEETPLANE_", extra="ignore")

    # The root admin, created on first start.  Without a password one is generated
    # into the data dir (`admin-password`, mode 0600); its path is logged, never the value.
    admin_username: str = Field(default="admin", pattern=r"^[a-z0-9_]+$")
    admin_password: str | None = None
    # How long a sign-in (its refresh token) lasts.
    session_ttl_seconds: int = Field(default=7 * 24 * 3600, gt=0)
    # argon2id cost of password hashes (argon2-cffi's defaults).  Existing hashes keep
    # their own parameters; lower values are for tests on busy machines only.
    password_hash_time_cost: int = Field(default=3, ge=1)
    password_hash_memory_kib: int = Field(default=65536, ge=8)
