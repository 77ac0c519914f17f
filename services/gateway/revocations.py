"""What every gateway replica knows about revoked credentials, projected from identity events.

Each replica follows the identity service's integration events on JetStream
(ordered consumers from the start of the stream) and keeps, in memory:
deleted users, ended sessions, current roles, removed room members (with the
removal time), revoked API keys, and who the root admin is (the owner v3.8.0
gives rooms created with an API key).  A token is checked against this state on
every request, so a deletion, logout or password change is honoured by every
replica as soon as the event arrives (milliseconds), without a round trip to
the identity service per request.  The gateway is not ready until it has
caught up with the stream.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import nats
from nats.js.api import ConsumerConfig, DeliverPolicy

from contracts.events import aggregate_subjects
from services.runtime.logging import get_logger

log = get_logger("meetplane.gateway.revocations")

AGGREGATES = ("user", "member", "apikey")


@dataclass
class RevocationState:
    """The revocation facts a replica has seen (pure data; `apply` is the only writer)."""

    deleted_users: dict[str, int] = field(default_factory=dict)
    revoked_sessions: dict[str, int] = field(default_factory=dict)
    roles: dict[str, str] = field(default_factory=dict)
    removed_members: dict[tuple[str, str], int] = field(default_factory=dict)
    revoked_keys: dict[str, int] = field(default_factory=dict)
    root_user: str | None = None

    def apply(self, event_type: str, data: dict[str, Any]) -> None:
        """Fold one identity integration event into the state."""
        if event_type in ("UserCreated", "RoleChanged"):
            self.roles[data["userId"]] = data["role"]
            if event_type == "UserCreated" and data.get("root"):
                self.root_user = data["userId"]
        elif event_type == "UserDeleted":
            self.deleted_users[data["userId"]] = data["deletedAt"]
        elif event_type == "SessionsRevoked":
            for session_id in data["sessionIds"]:
                self.revoked_sessions[session_id] = data["revokedAt"]
        elif event_type == "RoomMemberRemoved":
            self.removed_members[(data["roomId"], data["memberId"])] = data["removedAt"]
        elif event_type == "ApiKeyRevoked":
            self.revoked_keys[data["keyId"]] = data["revokedAt"]

    def session_revoked(self, user_id: str, session_id: str) -> bool:
        """Whether an access token of this user and session must be refused."""
        return user_id in self.deleted_users or session_id in self.revoked_sessions

    def member_revoked(self, room_id: str, member_id: str, issued_at_ms: int) -> bool:
        """Whether a member token issued at `issued_at_ms` was voided by a later removal."""
        removed = self.removed_members.get((room_id, member_id))
        return removed is not None and issued_at_ms <= removed


class RevocationFollower:
    """Keeps a `RevocationState` current from the stream."""

    def __init__(self, stream: str = "MEETPLANE") -> None:
        self.stream = stream
        self.state = RevocationState()
        self.on_key_revoked: list[Any] = []
        self._subs: list[Any] = []
        self.caught_up = False

    async def start(self, nc: nats.NATS, timeout: float = 30.0) -> None:
        """Subscribe from the start of the stream and wait until the backlog is applied.

        Safe to call again after a failure (JetStream electing a leader): the
        aggregates already subscribed are not subscribed twice.
        """
        js = nc.jetstream()
        for aggregate in AGGREGATES[len(self._subs) :]:
            sub = await js.subscribe(
                aggregate_subjects(aggregate),
                stream=self.stream,
                ordered_consumer=True,
                config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
                cb=self._on_message,
            )
            self._subs.append(sub)
        await self._wait_caught_up(timeout)

    async def _wait_caught_up(self, timeout: float) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            pending = 0
            for sub in self._subs:
                info = await sub.consumer_info()
                pending += info.num_pending + sub.pending_msgs
            if pending == 0:
                self.caught_up = True
                return
            await asyncio.sleep(0.02)
        log.warning("revocations.catch_up_slow")
        self.caught_up = True

    async def _on_message(self, msg: Any) -> None:
        try:
            envelope = json.loads(msg.data)
            self.state.apply(envelope["type"], envelope["data"])
        except (ValueError, KeyError) as exc:
            log.error("revocations.bad_event", error=str(exc))
            return
        if envelope["type"] == "ApiKeyRevoked":
            for callback in self.on_key_revoked:
                callback(envelope["data"]["keyId"])

    async def stop(self) -> None:
        """Unsubscribe."""
        for sub in self._subs:
            try:
                await sub.unsubscribe()
            except Exception as exc:  # the connection may already be closed
                log.info("revocations.unsubscribe_failed", error=str(exc))
        self._subs = []
