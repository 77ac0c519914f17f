"""Names are readable text: control, bidi-formatting and only-invisible names are refused."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from contracts.commands.meetings import JoinMeeting
from contracts.identity import AddMemberRequest
from contracts.rooms import CreateRoomRequest, UpdateRoomSettingsRequest

REFUSED = {
    "nul": "a\x00b",
    "newline": "line\nbreak",
    "escape": "\x1b[31mred",
    "c1 control": "a\x85b",
    "right-to-left override": "invoice\u202egnp.exe",
    "isolate": "a\u2066b\u2069",
    "only spaces": "   ",
    "only zero-width": "\u200b\u200d",
    "hangul filler": "\u3164",
    "braille blank": "\u2800\u2800",
    "only combining marks": "\u0301\u0301",
}
ACCEPTED = ["Daily stand-up", "Réunion d'équipe", "会議室", "Ünïcødé 🎉", "O'Brien", "a b"]


def models(name: str) -> list[Any]:
    return [
        lambda: CreateRoomRequest(roomName=name),
        lambda: UpdateRoomSettingsRequest(roomName=name),
        lambda: JoinMeeting(roomId="r", secret="s", participantName=name, commandId="c"),
        lambda: AddMemberRequest(name=name, baseRole="speaker"),
    ]


@pytest.mark.parametrize("name", REFUSED.values(), ids=REFUSED.keys())
def test_unreadable_names_are_refused_everywhere_a_name_is_taken(name: str) -> None:
    for make in models(name):
        with pytest.raises(ValidationError):
            make()


@pytest.mark.parametrize("name", ACCEPTED)
def test_names_in_any_script_are_accepted(name: str) -> None:
    for make in models(name):
        make()


def test_names_keep_their_length_limit() -> None:
    with pytest.raises(ValidationError):
        CreateRoomRequest(roomName="x" * 51)
