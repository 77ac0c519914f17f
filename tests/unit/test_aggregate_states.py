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
