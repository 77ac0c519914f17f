"""A consumed create takes its aggregate as new without asking the store, and survives a duplicate.

`UnitOfWork.get_for_create` saves the meetings consumer a store query per
`RoomCreated`; a create delivered twice (an outbox republishing after its
duplicate window) must still be applied, not fail or park.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from eventsourcing.persistence import Tracking

from contracts.events import RoomCreated, make_envelope
from services.meetings.application import MeetingsApplication
from services.meetings.domain import known_room_id
from services.meetings.settings import MeetingsSettings
from services.runtime.consumer import Consumed
from services.runtime.store import eventsourcing_env
from tests.support.calls import record_calls
from tests.support.rooms import room_state


@pytest.fixture
def app(tmp_path: Path) -> MeetingsApplication:
    settings = MeetingsSettings(data_dir=tmp_path, store="sqlite")
    return MeetingsApplication(env=eventsourcing_env(settings, "meetings"))


def created(name: str, seq: int) -> Consumed:
    room = room_state("room_presumed-abcdef", name)
    envelope = make_envelope(
        uuid.uuid4(), RoomCreated(room=room), source="rooms", subject_id=room["roomId"]
    )
    return Consumed(envelope, Tracking("meetings-events", seq))


def test_a_create_does_not_ask_the_store_and_a_duplicate_create_is_applied(
    app: MeetingsApplication, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = record_calls(
        monkeypatch, app.recorder, "select_events", lambda *_, **k: k["originator_id"]
    )
    first = created("first name", 1)
    app.process_batch([first], first.tracking, app.react)
    assert asked == [], "a new room was taken as new, without a query"

    app.repository.cache.get(known_room_id("room_presumed-abcdef"), evict=True)
    again = created("second name", 2)  # the same room created again: it exists
    app.process_batch([again], again.tracking, app.react)
    room = app.known_room("room_presumed-abcdef")
    assert room.state["roomName"] == "second name"
    assert app.position_of("meetings-events") == 2
