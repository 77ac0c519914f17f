"""The Room aggregate and its rules, without I/O."""

from __future__ import annotations

import pytest

from services.rooms.domain import (
    InvalidRoomRequest,
    Room,
    RoomConflict,
    RoomNotFound,
    check_auto_deletion_date,
    room_id_prefix,
)


def new_room(**overrides: object) -> Room:
    values: dict[str, object] = {
        "room_id": "demo-abc123",
        "room_name": "Demo",
        "creation_date": 1,
        "auto_deletion_date": None,
        "auto_deletion_policy": None,
        "config": {},
        "roles": {},
        "anonymous": {"moderator": {"enabled": True, "secret": "m"}},
        "meeting_end_action": "none",
    }
    values.update(overrides)
    return Room(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "prefix"),
    [
        ("Daily Stand-up", "daily_stand_up"),
        ("Réunion  d'équipe", "reunion_dequipe"),
        ("Ünïcödé", "unicode"),
        ("!!!", "room"),
        ("   ", "room"),
        ("a-b c_d", "a_b_c_d"),
        ("会议", "room"),
    ],
)
def test_room_id_prefix_follows_openvidu_rules(name: str, prefix: str) -> None:
    assert room_id_prefix(name) == prefix


def test_room_aggregate_id_is_derived_from_room_id() -> None:
    assert new_room().id == Room.create_id("demo-abc123")


def test_unchanged_values_record_no_event() -> None:
    room = new_room()
    room.collect_events()
    room.rename("Demo")
    room.change_status("open")
    room.set_meeting_end_action("none")
    assert room.collect_events() == []


def test_status_reflects_close_and_active_meeting() -> None:
    room = new_room()
    assert room.status == "open"
    room.meeting_started("m1")
    assert room.status == "active_meeting"
    room.change_status("closed")
    assert room.status == "closed"
    room.change_status("open")
    assert room.meeting_ended("m1") is True
    assert room.status == "open"


def test_meeting_ended_for_another_meeting_is_ignored() -> None:
    room = new_room()
    room.meeting_started("m1")
    assert room.meeting_ended("m0") is False
    assert room.status == "active_meeting"


def test_deleted_room_refuses_every_command() -> None:
    room = new_room()
    room.delete("fail", "fail", "admin")
    for action in (
        lambda: room.rename("x"),
        lambda: room.change_status("closed"),
        lambda: room.update_config({"a": 1}),
        lambda: room.plan_deletion("fail", "fail", False),
    ):
        with pytest.raises(RoomNotFound):
            action()


@pytest.mark.parametrize(
    ("active", "with_meeting", "with_recordings", "has_recordings", "action", "code"),
    [
        (False, "fail", "fail", False, "delete", "room_deleted"),
        (False, "fail", "close", True, "close", "room_closed"),
        (False, "fail", "force", True, "delete", "room_and_recordings_deleted"),
        (True, "force", "fail", False, "delete", "room_with_active_meeting_deleted"),
        (True, "force", "force", True, "delete", "room_with_active_meeting_and_recordings_deleted"),
        (True, "force", "close", True, "close", "room_with_active_meeting_closed"),
        (
            True,
            "when_meeting_ends",
            "fail",
            False,
            "schedule",
            "room_with_active_meeting_scheduled_to_be_deleted",
        ),
        (
            True,
            "when_meeting_ends",
            "close",
            True,
            "schedule",
            "room_with_active_meeting_scheduled_to_be_closed",
        ),
        (
            True,
            "when_meeting_ends",
            "force",
            True,
            "schedule",
            "room_with_active_meeting_and_recordings_scheduled_to_be_deleted",
        ),
    ],
)
def test_deletion_plan_table(
    active: bool,
    with_meeting: str,
    with_recordings: str,
    has_recordings: bool,
    action: str,
    code: str,
) -> None:
    room = new_room()
    if active:
        room.meeting_started("m1")
    plan = room.plan_deletion(with_meeting, with_recordings, has_recordings)
    assert (plan.action, plan.success_code) == (action, code)


@pytest.mark.parametrize(
    ("active", "with_meeting", "with_recordings", "has_recordings", "error"),
    [
        (False, "fail", "fail", True, "room_has_recordings"),
        (True, "fail", "force", False, "room_has_active_meeting"),
        (True, "force", "fail", True, "room_with_active_meeting_has_recordings"),
    ],
)
def test_deletion_refusals(
    active: bool, with_meeting: str, with_recordings: str, has_recordings: bool, error: str
) -> None:
    room = new_room()
    if active:
        room.meeting_started("m1")
    with pytest.raises(RoomConflict) as info:
        room.plan_deletion(with_meeting, with_recordings, has_recordings)
    assert info.value.error == error


def test_auto_deletion_date_must_be_an_hour_ahead() -> None:
    now = 1_000_000_000
    check_auto_deletion_date(now + 3_600_000, now)
    with pytest.raises(InvalidRoomRequest) as info:
        check_auto_deletion_date(now + 3_599_999, now)
    assert info.value.field == "autoDeletionDate"


def test_replaying_events_rebuilds_the_same_room() -> None:
    room = new_room()
    room.rename("New")
    room.set_auto_deletion(10_000_000, {"withMeeting": "force", "withRecordings": "close"}, 0)
    room.change_status("closed")
    events = room.collect_events()
    rebuilt = None
    for domain_event in events:
        rebuilt = domain_event.mutate(rebuilt)
    assert rebuilt is not None
    assert (rebuilt.room_name, rebuilt.auto_deletion_date, rebuilt.status) == (
        "New",
        10_000_000,
        "closed",
    )
