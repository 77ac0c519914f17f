"""Identity aggregates: users, sessions, API keys and room members (no I/O)."""

from __future__ import annotations

import pytest

from services.identity.domain import (
    ApiKey,
    Forbidden,
    MemberConflict,
    MemberNotFound,
    RoomMember,
    User,
    UserNotFound,
    member_aggregate_id,
    user_aggregate_id,
)


def user(user_id: str = "alice", root: bool = False) -> User:
    return User(
        user_id=user_id,
        name="Alice",
        role="room_manager",
        password_hash="$argon2id$fake",
        registration_date=1000,
        root=root,
    )


def replay(aggregate: object) -> object:
    """Rebuild an aggregate from its own pending events (what the store would do)."""
    events = aggregate.collect_events()  # type: ignore[attr-defined]
    rebuilt = None
    for domain_event in events:
        rebuilt = domain_event.mutate(rebuilt)
    return rebuilt


def test_user_id_is_derived_from_the_user_id() -> None:
    assert user("alice").id == user_aggregate_id("alice")


def test_sessions_open_expire_and_close() -> None:
    u = user()
    u.open_session("s1", expires_at=5000, now_ms=1000)
    u.open_session("s2", expires_at=9000, now_ms=1000)
    assert u.session_valid("s1", 4999) and not u.session_valid("s1", 5000)
    u.close_session("s1")
    assert not u.session_valid("s1", 2000) and u.session_valid("s2", 2000)
    u.open_session("s3", expires_at=20000, now_ms=10000)  # s2 expired: forgotten
    assert set(u.sessions) == {"s3"}


def test_password_change_ends_every_session() -> None:
    u = user()
    u.open_session("s1", 10_000, 0)
    u.open_session("s2", 10_000, 0)
    u.change_password("$argon2id$new")
    assert u.sessions == {} and u.password_hash == "$argon2id$new"
    assert not u.must_change_password


def test_admin_reset_ends_sessions_and_asks_for_a_change_but_not_on_oneself() -> None:
    u = user()
    u.open_session("s1", 10_000, 0)
    with pytest.raises(Forbidden):
        u.reset_password("$h", actor="alice")
    u.reset_password("$h", actor="root")
    assert u.sessions == {} and u.must_change_password


def test_root_admin_and_oneself_cannot_be_deleted_or_demoted() -> None:
    root = user("admin", root=True)
    with pytest.raises(Forbidden):
        root.delete(actor=None, now_ms=1)
    with pytest.raises(Forbidden):
        root.change_role("room_member", actor=None, now_ms=1)
    alice = user()
    with pytest.raises(Forbidden):
        alice.delete(actor="alice", now_ms=1)
    with pytest.raises(Forbidden):
        alice.change_role("admin", actor="alice", now_ms=1)


def test_deleted_user_refuses_everything_and_has_no_session() -> None:
    u = user()
    u.open_session("s1", 10_000, 0)
    u.delete(actor="root", now_ms=5)
    assert u.deleted and not u.session_valid("s1", 1)
    with pytest.raises(UserNotFound):
        u.change_role("admin", actor=None, now_ms=6)
    with pytest.raises(UserNotFound):
        u.open_session("s2", 10_000, 0)


def test_role_change_is_recorded_with_its_time_and_replays() -> None:
    u = user()
    u.change_role("admin", actor="root", now_ms=4242)
    u.change_role("admin", actor="root", now_ms=5000)  # same role: no event
    rebuilt = replay(u)
    assert isinstance(rebuilt, User)
    assert (rebuilt.role, rebuilt.role_updated_at, rebuilt.version) == ("admin", 4242, 2)


def test_api_key_revokes_once() -> None:
    key = ApiKey(key_id="k1", key_sha256="ab" * 32, prefix="ovmeet-abc", creation_date=1)
    key.revoke(2)
    key.revoke(3)
    rebuilt = replay(key)
    assert isinstance(rebuilt, ApiKey) and rebuilt.revoked and rebuilt.version == 2


def member() -> RoomMember:
    return RoomMember(
        room_id="r1",
        member_id="alice",
        member_type="user",
        user_id="alice",
        name="Alice",
        base_role="speaker",
        custom_permissions={"canRecord": True},
        membership_date=100,
        secret=None,
    )


def test_member_update_replaces_overrides_and_keeps_role_when_omitted() -> None:
    m = member()
    assert m.id == member_aggregate_id("r1", "alice")
    m.update(None, {"canShareScreen": False}, now_ms=200)
    assert (m.base_role, m.custom_permissions, m.permissions_updated_at) == (
        "speaker",
        {"canShareScreen": False},
        200,
    )
    m.update("moderator", None, now_ms=300)
    assert m.base_role == "moderator" and m.custom_permissions == {"canShareScreen": False}


def test_removed_member_is_gone_and_a_user_can_come_back() -> None:
    m = member()
    m.remove("removed", now_ms=5)
    with pytest.raises(MemberNotFound):
        m.update("moderator", None, now_ms=6)
    with pytest.raises(MemberNotFound):
        m.remove("removed", now_ms=6)
    m.readd("Alice", "moderator", {}, now_ms=7)
    assert not m.removed and m.base_role == "moderator" and m.membership_date == 7
    with pytest.raises(MemberConflict):
        m.readd("Alice", "speaker", {}, now_ms=8)
    rebuilt = replay(m)
    assert isinstance(rebuilt, RoomMember) and rebuilt.base_role == "moderator"
