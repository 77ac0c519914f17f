"""Meeting and RoomOccupancy rules, without I/O."""

from __future__ import annotations

import pytest

from services.meetings.application import participant_identity
from services.meetings.domain import (
    JoinRefused,
    Meeting,
    MeetingConflict,
    MeetingNotFound,
    RoomOccupancy,
)


def meeting() -> Meeting:
    return Meeting(meeting_id="m1", room_id="r1", started_at=0)


def test_one_live_meeting_per_occupancy() -> None:
    occupancy = RoomOccupancy(room_id="r1")
    occupancy.start("m1")
    with pytest.raises(MeetingConflict):
        occupancy.start("m2")
    occupancy.finish("m0")  # another meeting: ignored
    assert occupancy.active_meeting_id == "m1"
    occupancy.finish("m1")
    occupancy.start("m2")
    assert occupancy.meetings == 2


def test_join_leave_and_empty_since() -> None:
    m = meeting()
    assert m.empty_since == 0
    m.join("alice", "Alice", "moderator", 10)
    assert m.empty_since is None and m.present() == ["alice"]
    assert m.leave("alice", 20) is True
    assert m.leave("alice", 21) is False  # replayed webhook changes nothing
    assert m.empty_since == 20
    m.join("alice", "Alice", "moderator", 30)
    assert m.present() == ["alice"]


def test_a_name_is_present_once() -> None:
    m = meeting()
    m.join("alice", "Alice", "speaker", 1)
    with pytest.raises(MeetingConflict) as info:
        m.join("alice", "Alice", "speaker", 2)
    assert info.value.error == "participant_already_joined"


def test_evicted_participant_cannot_rejoin() -> None:
    m = meeting()
    m.join("bob", "Bob", "speaker", 1)
    m.evict("bob", 2)
    assert m.present() == []
    with pytest.raises(JoinRefused) as info:
        m.join("bob", "Bob", "speaker", 3)
    assert info.value.error == "participant_evicted"


def test_role_change_and_unknown_participant() -> None:
    m = meeting()
    m.join("bob", "Bob", "speaker", 1)
    m.change_role("bob", "moderator")
    assert m.participants["bob"]["role"] == "moderator"
    with pytest.raises(MeetingNotFound):
        m.change_role("nobody", "speaker")


def test_end_is_idempotent_and_final() -> None:
    m = meeting()
    m.join("alice", "Alice", "moderator", 1)
    assert m.end("ended_by_admin", 5) is True
    assert m.end("room_deleted", 6) is False
    assert (m.end_reason, m.ended_at) == ("ended_by_admin", 5)
    assert m.participants["alice"]["present"] is False
    with pytest.raises(MeetingNotFound):
        m.join("carol", "Carol", "speaker", 7)


@pytest.mark.parametrize(
    ("name", "identity"),
    [("Alice", "alice"), ("Zoë Smith-Jones", "zoe_smith_jones"), ("  Bob  ", "bob")],
)
def test_identity_is_a_stable_slug_of_the_name(name: str, identity: str) -> None:
    assert participant_identity(name) == identity


def test_unsluggable_names_still_get_distinct_identities() -> None:
    assert participant_identity("会议") != participant_identity("会話")
    assert participant_identity("会议").startswith("p_")


def test_a_copy_of_a_meeting_is_independent_and_does_not_copy_participants() -> None:
    import copy

    def meeting_of(size: int) -> Meeting:
        meeting = Meeting(meeting_id=f"m{size}", room_id="r", started_at=0)
        for i in range(size):
            meeting.join(f"p{i}", f"P {i}", "speaker", at=i)
        meeting.collect_events()
        return meeting

    big = meeting_of(300)
    clone = copy.deepcopy(big)
    clone.join("late", "Late", "speaker", at=1)
    clone.evict("p0", at=2)
    assert "late" not in big.participants and big.participants["p0"]["present"]
    assert big.evicted == [] and clone.evicted == ["p0"]
    assert big.version == 301 and clone.version == 303
    # Participant records are shared, never copied: a copy (what the aggregate cache
    # hands every join) costs the same at 300 participants as at 1 (bench/perf.py).
    assert clone.participants["p1"] is big.participants["p1"]


def test_a_copy_of_a_known_room_shares_its_state_and_changes_alone() -> None:
    import copy as _copy

    from services.meetings.domain import KnownRoom

    room = KnownRoom(room_id="r", state={"status": "open", "anonymous": {}})
    room.collect_events()
    clone = _copy.deepcopy(room)
    assert clone.state is room.state  # no copy of the whole room per load
    clone.record({"status": "closed", "anonymous": {}})
    clone.set_closed(True)
    assert room.state == {"status": "open", "anonymous": {}} and not room.closed
    assert clone.state["status"] == "closed" and clone.closed
    assert len(clone.collect_events()) == 2 and room.collect_events() == []


def test_a_copy_of_an_occupancy_changes_alone() -> None:
    import copy as _copy

    from services.meetings.domain import RoomOccupancy

    occupancy = RoomOccupancy(room_id="r")
    occupancy.collect_events()
    clone = _copy.deepcopy(occupancy)
    clone.start("m1")
    assert occupancy.active_meeting_id is None and occupancy.meetings == 0
    assert (clone.active_meeting_id, clone.meetings, clone.version) == ("m1", 1, 2)
    assert len(clone.collect_events()) == 1 and occupancy.collect_events() == []
