"""Settings every service shares, read from `MEETPLANE_*` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.runtime.secrets import DEV_LIVEKIT_API_SECRET

DEFAULT_NATS_PORT = 14222


class RuntimeSettings(BaseSettings):
    """Connection, store and logging settings (see the README's configuration table)."""

    model_config = SettingsConfigDict(env_prefix="MEETPLANE_", extra="ignore")

    data_dir: Path = Path(".meetplane")
    nats_url: str | None = None
    nats_port: int = DEFAULT_NATS_PORT
    nats_user: str | None = None
    nats_password: str | None = None
    nats_token: str | None = None
    nats_creds: Path | None = None
    # Replies come back on `<prefix>.<token>`; with per-service NATS users each has its
    # own (`_INBOX_<user>`), so no other client may subscribe to its replies.
    nats_inbox_prefix: str = "_INBOX"
    nats_tls_ca: Path | None = None
    nats_tls_cert: Path | None = None
    nats_tls_key: Path | None = None
    stream_name: str = "MEETPLANE"
    stream_replicas: int = Field(default=1, ge=1, le=5)
    store: Literal["sqlite", "postgres"] = "sqlite"
    postgres_dsn: str | None = None
    postgres_schema_prefix: str = ""
    # Each of a replica's two pools (event store, read models) keeps `pool_size`
    # connections open and opens up to `pool_overflow` more under load; see the
    # connection budget in deploy/k8s/README.md.
    postgres_pool_size: int = Field(default=2, ge=1)
    postgres_pool_overflow: int = Field(default=8, ge=0)
    # Aggregates each replica keeps in memory (a room is about 7 KB: 10,000 ~ 70 MB).
    aggregate_cache_size: int = Field(default=10_000, ge=1)
    log_format: Literal["console", "json"] = "console"
    log_level: str = "INFO"
    command_timeout: float = Field(default=5.0, gt=0)
    # How long a consumer that took fewer events than a batch, or a view projection
    # woken by a commit, waits for more before handling them (one transaction and one
    # ack for several); a caller waiting to read its own write (`caught_up`,
    # `wait_caught_up`) cuts the wait short.  0: each event at once.
    consumer_linger_ms: int = Field(default=100, ge=0, le=1000)
    health_host: str = "127.0.0.1"
    health_port: int | None = None
    instance_id: str | None = None
    # Fault injection for crash tests: while this file exists the outbox holds
    # committed events back (so a test can kill the service between commit and publish).
    outbox_hold_file: Path | None = None
    # LiveKit credentials: meetings and recordings call LiveKit, the gateway verifies
    # its webhooks.  The default secret is public: `serve` refuses it (unless
    # MEETPLANE_ALLOW_DEV_SECRETS=1) and `up` generates one into the data dir.
    livekit_url: str = "ws://127.0.0.1:7880"
    livekit_api_key: str = "devkey"
    livekit_api_secret: str = DEV_LIVEKIT_API_SECRET

    @property
    def consumer_linger(self) -> float:
        """`consumer_linger_ms` in seconds, as the consumers and views take it."""
        return self.consumer_linger_ms / 1000

    def effective_nats_url(self) -> str:
        """The configured NATS URL, or the embedded server's loopback address."""
        return self.nats_url or f"nats://127.0.0.1:{self.nats_port}"
