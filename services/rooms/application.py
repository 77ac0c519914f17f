"""The rooms Application: load, call, save, return plain values.

Synchronous like the eventsourcing library; handlers call it through
`ServiceApplication.call` (on the event loop for SQLite, a thread for PostgreSQL).
"""

from __future__ import annotations

import functools
import hashlib
import secrets
import string
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError, Tracking

from contracts.commands.rooms import DeleteRoomResult, HistoryEntry
from contracts.rooms import (
    AccessUpdate,
    CreateRoomRequest,
    Permissions,
    Roles,
    RolesPatch,
    RoomConfig,
    RoomConfigPatch,
    RoomRecord,
    UpdateRoomSettingsRequest,
)
from services.rooms.domain import (
    DeletionPlan,
    InvalidRoomRequest,
    Room,
    RoomNotFound,
    aggregate_id,
    check_auto_deletion_date,
    deletion_message,
    room_id_prefix,
)
from services.runtime.clock import Clock, SystemClock
from services.runtime.logging import get_logger
from services.runtime.store import ServiceApplication, UnitOfWork, retries_on_conflict

if TYPE_CHECKING:
    from services.runtime.consumer import Consumed

log = get_logger("meetplane.rooms")


class RecordingsUnknown(Exception):
    """Handling an event needs to know whether the room has recordings; nobody asked."""


LINK_ROLES = ("moderator", "speaker", "recording")
_SUFFIX_ALPHABET = string.ascii_lowercase + string.digits


def _suffix_from(command_id: str) -> str:
    digest = int.from_bytes(hashlib.sha256(command_id.encode()).digest()[:8], "big")
    chars = []
    for _ in range(6):
        digest, index = divmod(digest, len(_SUFFIX_ALPHABET))
        chars.append(_SUFFIX_ALPHABET[index])
    return "".join(chars)


def _random_suffix() -> str:
    return "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(6))


def new_secret() -> str:
    """A room link secret."""
    return secrets.token_urlsafe(12)


class _AtVersion:
    """A room keyed by its id and version: an event-sourced room's state at a version is fixed."""

    __slots__ = ("key", "room")

    def __init__(self, room: Room) -> None:
        self.room: Room | None = room  # only until its record is made
        self.key = (room.room_id, room.version)

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _AtVersion) and self.key == other.key


def to_record(room: Room) -> RoomRecord:
    """The wire shape of a room (a saved or loaded one: never change what it returns).

    Kept for the last rooms seen: a create's reply and the rooms view both need
    the record of the same version, and reads ask for it again and again; each
    validation of the nested record costs about 0.1 ms.
    """
    return _record_at(_AtVersion(room))


@functools.lru_cache(maxsize=1024)
def _record_at(at: _AtVersion) -> RoomRecord:
    room, at.room = at.room, None  # the cache keeps the key, not the aggregate
    assert room is not None
    return RoomRecord.model_validate(
        {
            "roomId": room.room_id,
            "roomName": room.room_name,
            "creationDate": room.creation_date,
            "autoDeletionDate": room.auto_deletion_date,
            "autoDeletionPolicy": room.auto_deletion_policy,
            "config": room.config,
            "roles": room.roles,
            "anonymous": room.anonymous,
            "status": room.api_status,
            "meetingEndAction": room.end_action,
            "pendingDeletion": room.pending_deletion is not None,
            "owner": room.owner,
            "userAccess": room.user_access,
            # Rooms whose roles and access never changed (or changed before it was kept).
            "rolesUpdatedAt": getattr(room, "roles_updated_at", room.creation_date),
        }
    )


class RoomsApplication(ServiceApplication):
    """Room commands and queries over the room event store."""

    name = "rooms"
    snapshotting_intervals = {Room: 100}

    def __init__(self, env: dict[str, str] | None = None, clock: Clock | None = None) -> None:
        super().__init__(env)
        self.clock: Clock = clock or SystemClock()

    # ---- loading ---------------------------------------------------------------

    def _get(self, room_id: str, *, to_change: bool = True) -> Room:
        """A live room: a copy to change, or (`to_change=False`) the cached one to read."""
        try:
            room = cast(
                Room, self.repository.get(aggregate_id(room_id), deepcopy_from_cache=to_change)
            )
        except AggregateNotFoundError:
            raise RoomNotFound(f'Room "{room_id}" does not exist') from None
        if room.deleted:
            raise RoomNotFound(f'Room "{room_id}" does not exist')
        return room

    def _find(self, room_id: str) -> Room | None:
        """The room, deleted or not; None if it never existed.

        For reading only: it is the cached object itself, not a copy (a copy of
        every room read cost a fifth of the rooms consumer's time); commands
        that change a room load it with `_get`.
        """
        try:
            return cast(Room, self.repository.get(aggregate_id(room_id), deepcopy_from_cache=False))
        except AggregateNotFoundError:
            return None

    def _peek(self, room_id: str) -> Room | None:
        """The cached room as it is, without asking the store for newer events.

        For hints only (`rooms_to_check_for_recordings`): another replica may
        have changed the room since, and `react` refuses a batch whose hint was
        wrong.  Each `_find` of a cached room costs a query (the cache
        fast-forwards), and the batch then loads the room again to change it.
        """
        cache = self.repository.cache
        if cache is not None:
            try:
                return cast(Room, cache.get(aggregate_id(room_id)))
            except KeyError:
                pass
        return self._find(room_id)

    def load(self, aggregate: UUID, version: int | None = None) -> Room:
        """A room by aggregate id, optionally at a version (outbox, projections)."""
        return cast(Room, self.repository.get(aggregate, version=version))

    # ---- commands --------------------------------------------------------------

    def create_room(
        self, request: CreateRoomRequest, command_id: str | None = None, owner: str | None = None
    ) -> RoomRecord:
        """Create a room with a fresh id and fresh link secrets.

        With a `command_id` the room id is derived from it, so a retried command
        finds the room its first attempt created and returns it (idempotency
        that survives the crash of the replica that handled the first attempt).
        """
        now = self.clock.now_ms()
        if request.autoDeletionDate is not None:
            check_auto_deletion_date(request.autoDeletionDate, now)
        room_name = request.roomName.strip()
        if not room_name:
            raise InvalidRoomRequest("roomName must not be blank", field="roomName")
        anonymous = {
            role: {
                "enabled": getattr(request.access.anonymous, role).enabled,
                "secret": new_secret(),
            }
            for role in LINK_ROLES
        }
        prefix = room_id_prefix(room_name)
        # The id is presumed free and the event store's uniqueness decides: asking
        # first cost a query per create, and the answer is almost always "free".
        room_id = f"{prefix}-{_suffix_from(command_id) if command_id else _random_suffix()}"
        while True:
            room = Room(
                room_id=room_id,
                room_name=room_name,
                creation_date=now,
                auto_deletion_date=request.autoDeletionDate,
                auto_deletion_policy=request.autoDeletionPolicy.model_dump()
                if request.autoDeletionDate is not None
                else None,
                config=request.config.model_dump(mode="json"),
                roles=request.roles.model_dump(mode="json"),
                anonymous=anonymous,
                meeting_end_action=request.meetingEndAction.value,
                command_id=command_id,
                owner=owner,
                user_access=request.access.user.enabled,
            )
            try:
                self.save(room)
            except IntegrityError:
                existing = self._find(room_id)
                if existing is None:
                    raise
                if command_id and existing.command_id == command_id:
                    # A retry of this command (its reply was lost, or it raced on
                    # another replica and won): answer with the room it created.
                    return to_record(existing)
                room_id = f"{prefix}-{_random_suffix()}"  # the id is taken: draw another
                continue
            return to_record(room)

    def get_room(self, room_id: str) -> RoomRecord:
        """One room."""
        return to_record(self._get(room_id, to_change=False))

    @retries_on_conflict
    def update_config(self, room_id: str, patch: RoomConfigPatch) -> RoomRecord:
        """Merge a config patch; the merged config is validated as a whole."""
        room = self._get(room_id)
        merged = {**room.config, **patch.model_dump(mode="json", exclude_none=True)}
        try:
            config = RoomConfig.model_validate(merged)
        except ValueError as exc:
            raise InvalidRoomRequest(str(exc), field="config") from None
        room.update_config(config.model_dump(mode="json"))
        self.save(room)
        return to_record(room)

    @retries_on_conflict
    def update_settings(self, room_id: str, settings: UpdateRoomSettingsRequest) -> RoomRecord:
        """Rename, set/move/clear auto-deletion, change the meeting end action."""
        room = self._get(room_id)
        if settings.roomName is not None:
            name = settings.roomName.strip()
            if not name:
                raise InvalidRoomRequest("roomName must not be blank", field="roomName")
            room.rename(name)
        if settings.clearAutoDeletionDate:
            room.clear_auto_deletion()
        elif settings.autoDeletionDate is not None:
            policy = (
                settings.autoDeletionPolicy.model_dump()
                if settings.autoDeletionPolicy
                else room.auto_deletion_policy
                or {"withMeeting": "when_meeting_ends", "withRecordings": "close"}
            )
            room.set_auto_deletion(settings.autoDeletionDate, policy, self.clock.now_ms())
        if settings.autoDeletionPolicy is not None and settings.autoDeletionDate is None:
            room.set_auto_deletion_policy(settings.autoDeletionPolicy.model_dump())
        if settings.meetingEndAction is not None:
            room.set_meeting_end_action(settings.meetingEndAction.value)
        self.save(room)
        return to_record(room)

    @retries_on_conflict
    def update_status(self, room_id: str, status: str) -> RoomRecord:
        """Open or close the room."""
        room = self._get(room_id)
        room.request_status(status)
        self.save(room)
        return to_record(room)

    @retries_on_conflict
    def update_roles(self, room_id: str, patch: RolesPatch) -> RoomRecord:
        """Merge permission patches per role."""
        room = self._get(room_id)
        roles = Roles.model_validate(room.roles)
        merged: dict[str, Any] = {}
        for role in ("moderator", "speaker"):
            current = getattr(roles, role).permissions.model_dump()
            current.update(getattr(patch, role) or {})
            merged[role] = {"permissions": Permissions.model_validate(current).model_dump()}
        room.update_roles(merged, at=self.clock.now_ms())
        self.save(room)
        return to_record(room)

    @retries_on_conflict
    def update_access(self, room_id: str, update: AccessUpdate) -> RoomRecord:
        """Enable/disable links and regenerate the named secrets."""
        room = self._get(room_id)
        anonymous = {role: dict(link) for role, link in room.anonymous.items()}
        if update.anonymous is not None:
            for role in LINK_ROLES:
                anonymous[role]["enabled"] = getattr(update.anonymous, role).enabled
        for role in update.regenerate:
            anonymous[role]["secret"] = new_secret()
        room.update_access(anonymous, at=self.clock.now_ms())
        if update.user is not None:
            room.set_user_access(update.user.enabled, at=self.clock.now_ms())
        self.save(room)
        return to_record(room)

    def plan_deletion(
        self, room_id: str, with_meeting: str, with_recordings: str, has_recordings: bool
    ) -> DeletionPlan:
        """What a delete would do (raises if the policy refuses)."""
        room = self._get(room_id, to_change=False)
        return room.plan_deletion(with_meeting, with_recordings, has_recordings)

    @retries_on_conflict
    def delete_room(
        self,
        room_id: str,
        with_meeting: str,
        with_recordings: str,
        has_recordings: bool,
        reason: str = "admin",
        tracking: Tracking | None = None,
        command_id: str | None = None,
    ) -> DeleteRoomResult:
        """Delete, close or schedule by the plan the room's state and policies give.

        A retry of a delete that already happened (same `command_id`) answers
        the recorded outcome instead of 404.
        """
        found = self._find(room_id)
        replayed = found.deleted_by(command_id) if found is not None else None
        if replayed is not None:
            return DeleteRoomResult(
                roomId=room_id, successCode=replayed, message=deletion_message(replayed, room_id)
            )
        room = self._get(room_id)
        plan = room.plan_deletion(with_meeting, with_recordings, has_recordings)
        self._carry_out(room, plan, with_meeting, with_recordings, reason, command_id)
        self._save(room, tracking)
        return DeleteRoomResult(
            roomId=room_id,
            successCode=plan.success_code,
            message=plan.message,
            scheduled=plan.action == "schedule",
            room=None if room.deleted else to_record(room).model_dump(mode="json"),
        )

    def _carry_out(
        self,
        room: Room,
        plan: DeletionPlan,
        with_meeting: str,
        with_recordings: str,
        reason: str,
        command_id: str | None = None,
    ) -> None:
        if plan.action == "delete":
            room.delete(with_meeting, with_recordings, reason, command_id, plan.success_code)
        elif plan.action == "close":
            room.change_status(
                "closed", reason=f"{reason}_kept_recordings", end_meeting=with_meeting == "force"
            )
        else:
            end_action = "close" if plan.success_code.endswith("closed") else "delete"
            room.schedule_deletion(with_meeting, with_recordings, reason, end_action)
            room.change_status("closed", reason="deletion_scheduled")

    def _save(self, room: Room, tracking: Tracking | None) -> None:
        if tracking is None:
            self.save(room)
        else:
            self.save_tracked(room, tracking=tracking)

    # ---- reactions to other services' events (one consumed batch at a time) -------

    def room_exists(self, room_id: str) -> bool:
        """Whether a live room with this id exists."""
        try:
            self._get(room_id, to_change=False)
        except RoomNotFound:
            return False
        return True

    def rooms_to_check_for_recordings(self, batch: Sequence[Consumed]) -> set[str]:
        """Rooms whose handling of `batch` depends on whether they have recordings.

        Read from the stored rooms; `react` refuses (and the consumer retries the
        events one by one) if an earlier event of the batch changed the answer.
        """
        needed: set[str] = set()
        for consumed in batch:
            kind = consumed.envelope.type
            if kind not in ("MeetingEnded", "RoomAutoDeletionDue"):
                continue  # no other event asks (and a room load per event is not free)
            data = consumed.envelope.data
            room = self._peek(str(data.get("roomId", "")))
            if not isinstance(room, Room) or room.deleted:
                continue
            if kind == "MeetingEnded":
                pending = room.pending_after(data["meetingId"])
                if pending and "close" not in pending:
                    needed.add(room.room_id)
            elif kind == "RoomAutoDeletionDue" and room.auto_deletion_date == data.get(
                "autoDeletionDate"
            ):
                needed.add(room.room_id)
        return needed

    def react(
        self, uow: UnitOfWork, consumed: Consumed, has_recordings: Mapping[str, bool]
    ) -> None:
        """Apply one consumed event (MeetingStarted, MeetingEnded, RoomAutoDeletionDue)."""
        envelope, data = consumed.envelope, consumed.envelope.data
        room = uow.get(aggregate_id(str(data["roomId"])))
        if not isinstance(room, Room) or room.deleted:
            return
        if envelope.type == "MeetingStarted":
            room.meeting_started(data["meetingId"])
        elif envelope.type == "MeetingEnded":
            self._meeting_ended(room, data["meetingId"], has_recordings)
        elif envelope.type == "RoomAutoDeletionDue":
            code = self._auto_deletion_due(room, int(data["autoDeletionDate"]), has_recordings)
            log.info("room.auto_deletion", room_id=room.room_id, success_code=code)

    @staticmethod
    def _has_recordings(room: Room, has_recordings: Mapping[str, bool]) -> bool:
        if room.room_id not in has_recordings:
            raise RecordingsUnknown(f"room '{room.room_id}': recordings not checked")
        return has_recordings[room.room_id]

    def _meeting_ended(
        self, room: Room, meeting_id: str, has_recordings: Mapping[str, bool]
    ) -> None:
        """Clear `active_meeting`, then finish a scheduled deletion or the end action."""
        pending = room.pending_after(meeting_id)
        if not room.meeting_ended(meeting_id):
            return
        if pending and "close" in pending:
            room.change_status("closed", reason="meeting_end_action")
        elif pending:
            with_recordings = pending["withRecordings"]
            if self._has_recordings(room, has_recordings) and with_recordings != "force":
                # Keep the recordings: close instead of deleting.
                room.change_status("closed", reason=f"{pending['reason']}_kept_recordings")
            else:
                room.delete("force", with_recordings, pending["reason"])

    def _auto_deletion_due(
        self, room: Room, due_date: int, has_recordings: Mapping[str, bool]
    ) -> str | None:
        """Apply the room's auto-deletion policy; returns the success code, None if stale."""
        if room.auto_deletion_date != due_date:
            return None  # the date moved: this firing is stale
        policy = room.auto_deletion_policy or {
            "withMeeting": "when_meeting_ends",
            "withRecordings": "close",
        }
        plan = room.plan_deletion(
            policy["withMeeting"],
            policy["withRecordings"],
            self._has_recordings(room, has_recordings),
        )
        self._carry_out(
            room, plan, policy["withMeeting"], policy["withRecordings"], "auto_deletion"
        )
        return plan.success_code

    # ---- queries ---------------------------------------------------------------

    def history(self, room_id: str, after_version: int, limit: int) -> list[HistoryEntry]:
        """The room's domain events after `after_version`, oldest first."""
        if self._find(room_id) is None:
            raise RoomNotFound(f'Room "{room_id}" does not exist')
        entries: list[HistoryEntry] = []
        for stored in self.events.get(aggregate_id(room_id), gt=after_version, limit=limit):
            domain_event = cast(Room.Event, stored)
            data = {
                k: v
                for k, v in domain_event.__dict__.items()
                if k not in ("originator_id", "originator_version", "timestamp")
            }
            data.pop("anonymous", None)  # secrets stay out of the audit view
            entries.append(
                HistoryEntry(
                    version=domain_event.originator_version,
                    type=type(domain_event).__qualname__.split(".")[-1],
                    timestamp=int(domain_event.timestamp.timestamp() * 1000),
                    data=_jsonable(data),
                )
            )
        return entries


def _jsonable(data: dict[str, Any]) -> dict[str, Any]:
    import json

    return cast(dict[str, Any], json.loads(json.dumps(data, default=str)))
