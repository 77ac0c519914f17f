"""A room's wire record is made once per version: the reply, the view and reads share it."""

from __future__ import annotations

from pathlib import Path

import pytest

from contracts.rooms import CreateRoomRequest
from services.rooms.application import RoomsApplication, to_record
from services.rooms.settings import RoomsSettings
from services.runtime.store import eventsourcing_env


@pytest.fixture
def app(tmp_path: Path) -> RoomsApplication:
    settings = RoomsSettings(data_dir=tmp_path, store="sqlite", aggregate_cache_size=100)
    return RoomsApplication(env=eventsourcing_env(settings, "rooms"))


def test_copies_of_a_room_at_one_version_share_one_record(app: RoomsApplication) -> None:
    created = app.create_room(CreateRoomRequest.model_validate({"roomName": "Daily"}))
    loaded = app.get_room(created.roomId)
    assert loaded is created  # the create's reply, not a second validation


def test_a_new_version_gets_its_own_record(app: RoomsApplication) -> None:
    created = app.create_room(CreateRoomRequest.model_validate({"roomName": "Daily"}))
    closed = app.update_status(created.roomId, "closed")
    assert closed is not created
    assert (created.status, closed.status) == ("open", "closed")
    assert app.get_room(created.roomId).status == "closed"
    assert to_record(app._get(created.roomId)).status == "closed"
