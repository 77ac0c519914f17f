"""Secrets of the platform: generated per data dir, never built in, never printed.

`meetplane up` generates every secret it needs on first start into the data dir
(one file each, created exclusively with mode 0600, so replicas sharing the
data dir agree on one value) unless the variable is set.  `meetplane serve`
refuses to start with a secret that is public knowledge (the development values
of the source code, the dev overlay and the compose example) unless
`MEETPLANE_ALLOW_DEV_SECRETS=1`, and then logs a warning.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Mapping
from pathlib import Path

# The LiveKit secret the settings fall back to when nothing is configured: public (it is
# in this file), so `serve` refuses it and `up` replaces it with a generated one.
DEV_LIVEKIT_API_SECRET = "meetplane-dev-secret-that-is-at-least-32-chars"  # noqa: S105

# Secrets `serve` checks, and the values everybody knows.
SECRET_VARIABLES = (
    "MEETPLANE_API_KEY",
    "MEETPLANE_LIVEKIT_API_SECRET",
    "MEETPLANE_AUTH_SIGNING_KEY",
    "MEETPLANE_ADMIN_PASSWORD",
    "MEETPLANE_STORAGE_SECRET_KEY",
    "MEETPLANE_NATS_PASSWORD",
)
KNOWN_DEV_SECRETS = frozenset({DEV_LIVEKIT_API_SECRET, "secret", "devsecret", "changeme"})
# The deploy examples mark their fake values with these prefixes (deploy/k8s/overlays/dev,
# deploy/compose.env.example).
KNOWN_DEV_PREFIXES = ("dev-only", "change-me")
ALLOW_DEV_SECRETS = "MEETPLANE_ALLOW_DEV_SECRETS"
# Services that sign or verify with the LiveKit secret (the others never read it).
LIVEKIT_SERVICES = frozenset({"meetings", "recordings", "gateway"})


class DevSecretsRefused(Exception):
    """A service was asked to run with a publicly known secret."""


def is_dev_secret(value: str) -> bool:
    """Whether `value` is a secret anyone can read in this repository."""
    return value in KNOWN_DEV_SECRETS or value.lower().startswith(KNOWN_DEV_PREFIXES)


def dev_secrets_in(env: Mapping[str, str], service: str) -> list[str]:
    """The names of the variables in `env` holding a known development secret.

    For a service that uses LiveKit, its secret counts when unset too: the settings
    then use the built-in one.
    """
    found = [name for name in SECRET_VARIABLES if is_dev_secret(env.get(name) or "")]
    if service in LIVEKIT_SERVICES and not env.get("MEETPLANE_LIVEKIT_API_SECRET"):
        found.append("MEETPLANE_LIVEKIT_API_SECRET")
    return sorted(set(found))


def check_dev_secrets(env: Mapping[str, str], service: str) -> None:
    """Refuse (raise) known development secrets unless `MEETPLANE_ALLOW_DEV_SECRETS=1`.

    Allowed, it logs a warning naming the variables (never their values).
    """
    found = dev_secrets_in(env, service)
    if not found:
        return
    if env.get(ALLOW_DEV_SECRETS) == "1":
        from services.runtime.logging import get_logger

        get_logger("meetplane.secrets").warning(
            "secrets.development_secrets_allowed", service=service, variables=found
        )
        return
    raise DevSecretsRefused(
        f"refusing to start {service}: {', '.join(found)} "
        f"{'holds a' if len(found) == 1 else 'hold'} publicly known development "
        f"secret{'s' if len(found) > 1 else ''}; set your own, or {ALLOW_DEV_SECRETS}=1 "
        "for a throwaway development setup"
    )


def data_dir_secret(data_dir: Path, name: str, nbytes: int = 32) -> str:
    """The secret kept in `<data_dir>/<name>`, generated there on first use.

    The file is created exclusively with mode 0600: of several processes starting
    together, one writes it and the others read that value.
    """
    path = Path(data_dir) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(100):  # another process is writing it right now
            value = path.read_text().strip()
            if value:
                return value
            time.sleep(0.02)
        raise RuntimeError(f"{path} is empty") from None
    with os.fdopen(fd, "w") as file:
        file.write(secrets.token_urlsafe(nbytes))
    return path.read_text().strip()


def configured_or_generated(env_var: str, data_dir: Path, name: str) -> str:
    """`env_var` when set, else the data dir's generated secret `name`."""
    return os.environ.get(env_var) or data_dir_secret(data_dir, name)
