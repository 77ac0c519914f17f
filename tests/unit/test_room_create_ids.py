"""A create presumes its room id is free and lets the event store's uniqueness decide.

Asking the store first cost a query per create. These tests pin what the
lookup used to guarantee: a retried command gets its first room back, and an
id that another room holds is never reused.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from contracts.rooms import CreateRoomRequest
from services.rooms import application
from services.rooms.application import RoomsApplication
from services.rooms.settings import RoomsSettings
from services.runtime.store import eventsourcing_env
from tests.support.calls import record_calls


@pytest.fixture
def app(tmp_path: Path) -> RoomsApplication:
    settings = RoomsSettings(data_dir=tmp_path, store="sqlite", aggregate_cache_size=100)
    return RoomsApplication(env=eventsourcing_env(settings, "rooms"))


def request(name: str = "Daily") -> CreateRoomRequest:
    return CreateRoomRequest.model_validate({"roomName": name})


def test_a_create_does_not_read_the_store(
    app: RoomsApplication, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = record_calls(monkeypatch, app.repository, "get")
    app.create_room(request(), command_id="c-1")
    app.create_room(request())
    assert reads == []


def test_a_retried_command_gets_the_room_it_created(app: RoomsApplication) -> None:
    first = app.create_room(request(), command_id="c-1")
    again = app.create_room(request(), command_id="c-1")
    assert again.roomId == first.roomId
    assert again.creationDate == first.creationDate


def test_an_id_held_by_another_room_is_not_reused(
    app: RoomsApplication, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = app.create_room(request(), command_id="c-1")
    # Another command whose derived suffix collides with the first room's.
    monkeypatch.setattr(application, "_suffix_from", lambda command_id: first.roomId[-6:])
    second = app.create_room(request(), command_id="c-2")
    assert second.roomId != first.roomId
    assert app.get_room(first.roomId).roomName == "Daily"
    assert app.get_room(second.roomId).roomId == second.roomId


def test_a_random_id_that_is_taken_is_drawn_again(
    app: RoomsApplication, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = app.create_room(request())
    drawn = iter([first.roomId[-6:], "zzzzz9"])
    monkeypatch.setattr(application, "_random_suffix", lambda: next(drawn))
    second = app.create_room(request())
    assert second.roomId.endswith("-zzzzz9")
