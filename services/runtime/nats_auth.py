"""Who may do what on NATS: one user per service, limited to its own subjects.

The one permission table of the platform.  `meetplane up` writes it into the
embedded nats-server's configuration with a password per user generated into
the data dir; the Kubernetes NATS configuration carries the same table
(`deploy/k8s/base/nats.yaml`, checked against this one by
`tests/deploy/test_manifests.py`) with passwords from the `meetplane-nats`
Secret.  A service may:

- publish the integration events of the aggregates it owns, park its own dead
  letters, and wake its own replicas;
- answer the commands of its own service (`meetplane.cmd.<service>.>`), replying
  only to the requester's reply subject (`allow_responses`);
- call the few commands of other services it needs (the gateway calls them all);
- read replies only on its private inbox prefix `_INBOX_<user>`, so no other
  client sees the tokens and secrets in its replies;
- use the JetStream API (consumers, acks, flow control; the gateway its KV buckets).

The `admin` user (the launcher, `meetplane` tools) may do everything.  An
unauthenticated client is refused at connect.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from contracts.commands import COMMAND_PREFIX
from contracts.events import SUBJECT_PREFIX
from contracts.streams import DLQ_SUBJECT_PREFIX

ADMIN = "admin"
SERVICE_USERS = ("rooms", "meetings", "recordings", "janitor", "identity", "gateway")
USERS = (*SERVICE_USERS, ADMIN)

# Aggregates whose events each service publishes (`source` of its envelopes).
OWNED_AGGREGATES: dict[str, tuple[str, ...]] = {
    "rooms": ("room",),
    "meetings": ("meeting",),
    "recordings": ("recording",),
    "janitor": ("janitor",),
    "identity": ("user", "member", "apikey"),
    "gateway": (),
}
# Commands each service sends to another one (the gateway sends every command).
CALLS: dict[str, tuple[str, ...]] = {
    "rooms": ("recordings.room_has_recordings",),
    "meetings": ("rooms.get",),
    "recordings": (),
    "janitor": ("meetings.end_empty", "recordings.sweep_orphans"),
    "identity": ("rooms.get",),
    "gateway": (">",),
}
JETSTREAM = ("$JS.API.>", "$JS.ACK.>", "$JS.FC.>")
# Must match services/runtime/dlq.py and wakeup.py (asserted by the tests).
DLQ_CHANGED_PREFIX = "meetplane.dlq-changed"
WAKE_PREFIX = "meetplane.wake"


def inbox_prefix(user: str) -> str:
    """The private reply prefix of a user (`MEETPLANE_NATS_INBOX_PREFIX`)."""
    return f"_INBOX_{user}"


@dataclass(frozen=True)
class Permissions:
    """What one NATS user may publish and subscribe to."""

    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    allow_responses: bool = False

    def as_config(self) -> dict[str, object]:
        """The `permissions` object of nats-server's configuration."""
        config: dict[str, object] = {
            "publish": {"allow": list(self.publish)},
            "subscribe": {"allow": list(self.subscribe)},
        }
        if self.allow_responses:
            config["allow_responses"] = True
        return config


def service_permissions(service: str) -> Permissions:
    """The permissions of one service's user."""
    consumer = f"{service}-events"
    publish = [f"{SUBJECT_PREFIX}.{aggregate}.>" for aggregate in OWNED_AGGREGATES[service]]
    publish += [f"{COMMAND_PREFIX}.{call}" for call in CALLS[service]]
    subscribe = [f"{inbox_prefix(service)}.>"]
    if service != "gateway":
        publish += [
            f"{COMMAND_PREFIX}.{service}.ping",  # a starting service pings itself
            f"{DLQ_SUBJECT_PREFIX}.{consumer}.>",
            f"{DLQ_CHANGED_PREFIX}.{consumer}",
            f"{WAKE_PREFIX}.{service}",
        ]
        subscribe += [
            f"{COMMAND_PREFIX}.{service}.>",
            f"{DLQ_CHANGED_PREFIX}.{consumer}",
            f"{WAKE_PREFIX}.{service}",
        ]
    else:
        publish.append("$KV.>")  # the webhook, configuration and rate-limit buckets
    publish += JETSTREAM
    return Permissions(tuple(publish), tuple(subscribe), allow_responses=service != "gateway")


PERMISSIONS: dict[str, Permissions] = {
    **{service: service_permissions(service) for service in SERVICE_USERS},
    ADMIN: Permissions(publish=(">",), subscribe=(">",), allow_responses=True),
}


def permission_table() -> str:
    """The README's permission table (Markdown), generated from `PERMISSIONS`."""

    def cells(subjects: tuple[str, ...]) -> str:
        return ", ".join(f"`{subject}`" for subject in subjects)

    rows = ["| user | may publish | may subscribe |", "|---|---|---|"]
    for user, permissions in PERMISSIONS.items():
        rows.append(f"| `{user}` | {cells(permissions.publish)} | {cells(permissions.subscribe)} |")
    return "\n".join(rows) + "\n"


AUTH_TIMEOUT_SECONDS = 5


def new_password() -> str:
    """A random NATS password that nats-server reads as a string through `$VARIABLE`.

    Compose and Kubernetes hand passwords to nats-server as variable references,
    whose values nats-server parses as configuration values: one starting with `-`
    or looking like a number or size (`12`, `1kb`) fails to parse or is not a string,
    and NATS does not start.  A letter first and URL-safe characters after it are
    always a plain string (`tests/integration/test_nats_permissions.py` checks).
    """
    return "n" + secrets.token_urlsafe(24)


def authorization_block(passwords: Mapping[str, str], *, references: bool = False) -> str:
    """nats-server's `authorization` block for every user.

    `passwords` maps users to their password, or with `references` to the name of
    the environment variable nats-server reads it from (`$NAME`, Kubernetes).
    """
    # A client has 5 s (nats-server's default: 2 s) from the server's INFO to its
    # CONNECT: on a loaded node a starved client would otherwise be cut off mid-handshake.
    lines = ["authorization {", f"  timeout: {AUTH_TIMEOUT_SECONDS}", "  users: ["]
    for user in USERS:
        password = f"${passwords[user]}" if references else json.dumps(passwords[user])
        permissions = json.dumps(PERMISSIONS[user].as_config())
        lines.append(
            f"    {{user: {json.dumps(user)}, password: {password}, permissions: {permissions}}}"
        )
    lines += ["  ]", "}"]
    return "\n".join(lines) + "\n"


def user_password(data_dir: Path, user: str) -> str:
    """The embedded NATS password of `user`, generated once into `<data dir>/nats-users/`."""
    from services.runtime.secrets import data_dir_secret

    folder = Path(data_dir) / "nats-users"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return data_dir_secret(folder, user)


def user_password_if_any(data_dir: Path, user: str) -> str | None:
    """The embedded NATS password of `user` if `up` generated one in this data dir."""
    path = Path(data_dir) / "nats-users" / user
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def write_server_config(data_dir: Path, path: Path) -> Path:
    """Write the embedded nats-server's configuration (mode 0600) with every user."""
    passwords = {user: user_password(data_dir, user) for user in USERS}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(authorization_block(passwords))
    return path
