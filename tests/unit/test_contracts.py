"""The wire contracts: every event documented, schemas committed and current."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from pydantic import ValidationError

from contracts.events import EVENT_TYPES, EventEnvelope, RoomStatusChanged, make_envelope
from services.runtime.schemas import event_schemas

ARCHITECTURE_EVENTS = {
    "RoomCreated", "RoomUpdated", "RoomStatusChanged", "RoomDeleted",
    "MeetingStarted", "ParticipantJoined", "ParticipantLeft", "ParticipantRoleChanged",
    "ParticipantEvicted", "MeetingEnded",
    "RecordingStarted", "RecordingActivated", "RecordingStopped", "RecordingReady", "RecordingFailed",
    "RecordingDeleted",
    "RoomAutoDeletionDue",
    "UserCreated", "UserDeleted", "RoleChanged", "SessionsRevoked",
    "RoomMemberAdded", "RoomMemberUpdated", "RoomMemberRemoved",
    "ApiKeyCreated", "ApiKeyRevoked",
}  # fmt: skip
SCHEMAS = Path(__file__).resolve().parents[2] / "contracts" / "schemas"


def test_every_event_of_the_architecture_is_defined_with_a_subject() -> None:
    assert set(EVENT_TYPES) == ARCHITECTURE_EVENTS
    for name, event_type in EVENT_TYPES.items():
        assert event_type.subject.startswith("meetplane.evt.")
        assert event_type.subject.endswith(f".{name}")


def test_committed_json_schemas_match_the_models() -> None:
    for name, schema in event_schemas().items():
        committed = json.loads((SCHEMAS / f"{name}.json").read_text())
        assert committed == json.loads(json.dumps(schema)), (
            f"{name}.json is stale: run `meetplane contracts export`"
        )


def test_asyncapi_documents_every_event_and_the_rooms_commands() -> None:
    whole = json.loads((SCHEMAS / "asyncapi.json").read_text())
    assert set(whole["channels"]) == ARCHITECTURE_EVENTS
    rooms = json.loads((SCHEMAS / "asyncapi-rooms.json").read_text())
    assert "meetplane.cmd.rooms.create" in rooms["channels"]
    assert {"RoomCreated", "RoomDeleted"} <= set(rooms["channels"])
    identity = json.loads((SCHEMAS / "asyncapi-identity.json").read_text())
    assert "meetplane.cmd.identity.login" in identity["channels"]
    assert {"UserDeleted", "SessionsRevoked", "ApiKeyRevoked"} <= set(identity["channels"])


def test_identity_events_carry_no_secret() -> None:
    words = ("password", "hash", "secret", "sha256")
    identity = [n for n, t in EVENT_TYPES.items() if t.aggregate in ("user", "member", "apikey")]
    assert len(identity) == 9
    for name in identity:
        fields = " ".join(EVENT_TYPES[name].model.model_fields).lower()
        assert not any(word in fields for word in words), name


def test_envelope_roundtrip_and_strictness() -> None:
    envelope = make_envelope(
        uuid.uuid4(),
        RoomStatusChanged(roomId="r-1", status="closed"),
        source="rooms",
        subject_id="r-1",
    )
    again = EventEnvelope.model_validate_json(envelope.model_dump_json())
    assert again == envelope
    assert isinstance(again.parse_data(), RoomStatusChanged)
    with pytest.raises(ValidationError):
        EventEnvelope.model_validate({**envelope.model_dump(mode="json"), "extra": 1})


def test_permission_names_are_the_permissions_fields() -> None:
    import typing

    from contracts.rooms import PermissionName, Permissions

    assert set(typing.get_args(PermissionName)) == set(Permissions.model_fields)
