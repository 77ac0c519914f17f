"""A follower's aggregate states pass over the kinds of aggregate it does not care for.

The meetings service records every room event as a `KnownRoom`; its outbox,
view and media effects follow the same log but only map meetings.  Decoding and
applying each room event three more times was a fifth of the meetings
consumer's time per event.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from services.meetings.application import MeetingsApplication
from services.meetings.domain import KnownRoom, Meeting
from services.meetings.settings import MeetingsSettings
from services.runtime.store import eventsourcing_env
from services.runtime.tracker import AggregateStates


@pytest.fixture
def app(tmp_path: Path) -> MeetingsApplication:
    settings = MeetingsSettings(data_dir=tmp_path, store="sqlite")
    return MeetingsApplication(env=eventsourcing_env(settings, "meetings"))


def test_only_the_named_kinds_are_decoded_and_advanced(
    app: MeetingsApplication, monkeypatch: pytest.MonkeyPatch
) -> None:
    app.save(KnownRoom(room_id="r1", state={"status": "open"}))
    meeting = Meeting(meeting_id="m1", room_id="r1", started_at=1)
    meeting.join("ann", "Ann", "speaker", 2, None)
    app.save(meeting)
    app.save(KnownRoom(room_id="r2", state={"status": "open"}))
    notifications = app.process_recorder.select_notifications(0, 10)
    assert len(notifications) == 4

    decoded: list[str] = []
    decode = app.traced_mapper.traced_notification
    monkeypatch.setattr(
        app.traced_mapper,
        "traced_notification",
        lambda n: decoded.append(n.topic) or decode(n),
    )
    states = AggregateStates(app, kinds=(Meeting,))
    seen = [
        (type(event).__qualname__, type(state).__name__)
        for event, state in states.advance(notifications)
    ]
    assert [state for _, state in seen] == ["Meeting", "Meeting"]
    assert all("KnownRoom" not in topic for topic in decoded)

    everything = AggregateStates(app)
    assert len(list(everything.advance(notifications))) == 4


def test_an_aggregate_seen_first_mid_history_comes_from_the_cache_at_its_version(
    app: MeetingsApplication, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A follower restarted mid-history (a restarted rooms service) meets aggregates
    the consumer has just loaded and saved: it takes the cached one, no rebuild."""
    meeting = Meeting(meeting_id="m1", room_id="r1", started_at=1)
    app.save(meeting)
    first = app.process_recorder.max_notification_id() or 0
    cached = app.repository.get(meeting.id)
    cached.join("ann", "Ann", "speaker", 2, None)
    app.save(cached)
    rebuilt: list[int | None] = []
    reconstruct = app.repository._reconstruct_aggregate

    def counted(aggregate_id: object, version: int | None, projector: object) -> object:
        rebuilt.append(version)
        return reconstruct(aggregate_id, version, projector)  # type: ignore[arg-type]

    monkeypatch.setattr(app.repository, "_reconstruct_aggregate", counted)
    later = app.process_recorder.select_notifications(first + 1, 10)
    states = AggregateStates(app)
    [(_, state)] = list(states.advance(later))
    assert state.version == 2 and "ann" in state.participants
    assert rebuilt == [], "taken from the repository's cache"

    # The cache behind the version followed (it holds what was last loaded): brought
    # forward with the events in between, still no rebuild.
    again = app.repository.get(meeting.id)
    again.join("bob", "Bob", "speaker", 3, None)
    app.save(again)
    again.join("cyd", "Cyd", "speaker", 4, None)
    app.save(again)
    newest = app.process_recorder.select_notifications(first + 3, 10)
    [(_, state)] = list(AggregateStates(app).advance(newest))
    assert state.version == 4 and {"bob", "cyd"} <= set(state.participants)
    assert rebuilt == []

    # The cache ahead of it (a follower far behind): rebuilt at the version it follows.
    assert app.repository.get(meeting.id).version == 4  # the cache is now at 4
    [(_, state)] = list(AggregateStates(app).advance(later))
    assert state.version == 2 and "bob" not in state.participants
    assert rebuilt == [2]
