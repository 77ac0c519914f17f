"""LiveKit join tokens as room member tokens: accepted only when LiveKit's key signed them."""

from __future__ import annotations

import json

import pytest
from livekit import api

from services.gateway.tokens import InvalidToken, MemberClaims, TokenService

OUR_KEY = "our-signing-key-" + "z" * 32
LIVEKIT = ("lk-key", "lk-secret-" + "x" * 32)
CLAIMS = MemberClaims(
    room_id="room-1",
    identity="ignored",
    kind="member",
    role="speaker",
    permissions={"canRecord": True},
    member_id="m-1",
    participant_name="Gina",
)


def join_token(key: str = LIVEKIT[0], secret: str = LIVEKIT[1], room: str = "room-1") -> str:
    return (
        api.AccessToken(key, secret)
        .with_identity("m-1")
        .with_grants(api.VideoGrants(room_join=True, room=room))
        .with_metadata(json.dumps({"member": CLAIMS.payload(), "livekitUrl": "ws://lk"}))
        .to_jwt()
    )


def test_a_join_token_reads_as_the_member_claims_it_carries() -> None:
    tokens = TokenService(OUR_KEY, livekit=LIVEKIT)
    claims = tokens.member_claims(join_token())
    assert claims.joined and claims.identity == "m-1" and claims.room_id == "room-1"
    assert claims.permissions == {"canRecord": True} and claims.member_id == "m-1"
    assert not tokens.member_claims(tokens.member_token(CLAIMS)).joined


@pytest.mark.parametrize(
    "token",
    [
        join_token(secret="another-secret-" + "y" * 32),  # not LiveKit's secret
        join_token(key="other-key"),  # not our LiveKit key
        join_token(room="room-2"),  # the grant's room is not the claims' room
    ],
)
def test_other_join_tokens_are_refused(token: str) -> None:
    with pytest.raises(InvalidToken):
        TokenService(OUR_KEY, livekit=LIVEKIT).member_claims(token)


def test_join_tokens_are_no_access_tokens() -> None:
    with pytest.raises(InvalidToken):
        TokenService(OUR_KEY, livekit=LIVEKIT).verify(join_token(), "access")
