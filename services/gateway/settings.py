"""Gateway settings (`MEETPLANE_*`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.runtime.settings import RuntimeSettings


class GatewaySettings(RuntimeSettings):
    """HTTP, auth and limits of the gateway."""

    model_config = SettingsConfigDict(env_prefix="MEETPLANE_", extra="ignore")

    http_host: str = "127.0.0.1"
    http_port: int = 8080
    api_key: str = Field(default="", description="admin API key (X-API-KEY)")
    public_url: str | None = None
    max_body_bytes: int = 1_048_576
    ready_ping_timeout: float = 1.0
    ready_services: str = "rooms,meetings,recordings,janitor,identity"
    # Sign-in tokens (see services/gateway/tokens.py): the signing key (generated into the
    # data dir when unset), the previous key during a rotation, the access token lifetime.
    auth_signing_key: str | None = None
    auth_previous_signing_key: str | None = None
    access_token_ttl_seconds: int = Field(default=900, gt=0)
    token_ttl_seconds: int = Field(default=21600, gt=0)
    # Failed sign-ins allowed (the `limits` notation) per user id and per client address.
    login_failures_per_user: str = "5/minute"
    login_failures_per_address: str = "20/minute"
    # Joins and member tokens with a wrong room secret, per client address and per room;
    # invalid API keys and tokens per client address; requests per API key.
    join_failures_per_address: str = "20/minute"
    join_failures_per_room: str = "100/minute"
    credential_failures_per_address: str = "30/minute"
    requests_per_api_key: str = "6000/minute"
    # Off only for tests that make hundreds of wrong calls on purpose.
    rate_limits_enabled: bool = True
    # Proxies whose X-Forwarded-For gives the client address (uvicorn's forwarded_allow_ips).
    forwarded_allow_ips: str = "127.0.0.1"
    # Longest life of a recording's share link (seconds; 0: no limit). An older link is
    # refused, and asking for the recording's link then makes a new one.
    share_link_max_seconds: int = Field(default=30 * 24 * 3600, ge=0)
    webhook_max_attempts: int = Field(default=10, ge=1, le=100)
    # The meetings service's media backend (the same variable): the room page connects
    # with livekit-client in `livekit` mode, and shows the local preview otherwise.
    media_backend: Literal["local", "livekit"] = "local"
    # Networks webhooks may reach although they are not public (comma-separated CIDRs):
    # by default none, so no webhook reaches loopback, private ranges or the metadata IP.
    webhook_allowed_networks: str = ""

    def readiness_services(self) -> list[str]:
        """Services that must answer a ping before the gateway reports ready."""
        return [s.strip() for s in self.ready_services.split(",") if s.strip()]

    def base_url(self) -> str:
        """Public base URL used in room links."""
        return (self.public_url or f"http://{self.http_host}:{self.http_port}").rstrip("/")
