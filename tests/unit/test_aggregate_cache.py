"""An aggregate a commit creates is cached: its first load does not rebuild it from the store.

In fast-forward mode eventsourcing caches an aggregate only on its first load;
the rooms consumer then rebuilt every new room (snapshot query, events query,
decoding) when its first meeting started, a third of its time per event.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from contracts.rooms import CreateRoomRequest
from services.rooms.application import RoomsApplication
from services.rooms.domain import aggregate_id
from services.rooms.settings import RoomsSettings
from services.runtime.store import eventsourcing_env
from tests.support.calls import record_calls


@pytest.fixture
def app(tmp_path: Path) -> RoomsApplication:
    settings = RoomsSettings(data_dir=tmp_path, store="sqlite", aggregate_cache_size=100)
    return RoomsApplication(env=eventsourcing_env(settings, "rooms"))


def test_a_created_room_is_loaded_from_the_cache_not_rebuilt(
    app: RoomsApplication, monkeypatch: pytest.MonkeyPatch
) -> None:
    rebuilt = record_calls(
        monkeypatch, app.repository, "_reconstruct_aggregate", lambda *args: args[0]
    )
    created = app.create_room(CreateRoomRequest.model_validate({"roomName": "cached"}))
    room = app.repository.get(aggregate_id(created.roomId))
    assert rebuilt == []
    assert room.room_id == created.roomId


def test_the_cached_copy_is_not_the_callers_and_follows_later_commits(
    app: RoomsApplication,
) -> None:
    created = app.create_room(CreateRoomRequest.model_validate({"roomName": "before"}))
    app.update_status(created.roomId, "closed")  # a later commit, reached by fast-forward
    room = app.repository.get(aggregate_id(created.roomId))
    assert room.status == "closed"
    assert app.get_room(created.roomId).roomName == "before"


def test_a_loaded_room_shares_values_but_changing_it_leaves_the_cache_alone(
    app: RoomsApplication,
) -> None:
    """Copies from the cache share the room's values (no deep copy); events replace them."""
    created = app.create_room(CreateRoomRequest.model_validate({"roomName": "shared"}))
    key = aggregate_id(created.roomId)
    mine = app.repository.get(key)
    assert mine.config is app.repository.get(key).config, "the values are shared, not copied"
    mine.rename("changed, never saved")
    mine.update_config({**mine.config, "recording": {"enabled": False}})
    fresh = app.repository.get(key)
    assert fresh.room_name == "shared"
    assert fresh.config == app.get_room(created.roomId).config.model_dump(mode="json")
    assert fresh.config != mine.config
    assert mine._pending_events and not fresh._pending_events
