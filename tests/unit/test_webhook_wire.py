"""Webhook bodies are byte for byte what OpenVidu Meet (Node's JSON.stringify) sends,
and every receiver OpenVidu publishes accepts their signature."""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
import subprocess
import time
from typing import Any

import pytest

from services.gateway.webhooks import wire
from tests.support.webhook_receivers import (
    ASCII_ONLY_RECEIVERS,
    RECEIVERS,
    accepted_by_all,
    node_like,
)

KEY = "meet-api-key"

NUMBERS = [
    (3.0, "3"),
    (-0.0, "0"),
    (3.6, "3.6"),
    (123.456, "123.456"),
    (0.000001, "0.000001"),
    (1e-7, "1e-7"),
    (1.5e-7, "1.5e-7"),
    (1e16, "10000000000000000"),
    (1e21, "1e+21"),
    (1.5e300, "1.5e+300"),
    (float("nan"), "null"),
    (12345678.9, "12345678.9"),
]


@pytest.mark.parametrize(("value", "expected"), NUMBERS)
def test_numbers_are_written_as_javascript_writes_them(value: float, expected: str) -> None:
    assert wire.js_number(value) == expected


def test_numbers_match_real_node() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed; the fixed expectations above still apply")
    values = [v for v, _ in NUMBERS if v == v]  # NaN is not JSON input
    script = "process.stdout.write(JSON.stringify(JSON.parse(require('fs').readFileSync(0))))"
    ours = wire.stringify(values)
    theirs = subprocess.run(
        [node, "-e", script], input=json.dumps(values).encode(), capture_output=True, check=True
    ).stdout.decode()
    assert ours == theirs


TRICKY: dict[str, Any] = {
    "event": "meetingStarted",
    "creationDate": 1_700_000_000_123,
    "data": {
        "roomId": "reunion-x1",
        "roomName": 'Réunion d\'équipe 🎥 "Q3"\t/\\',
        "access": {"anonymous": {"moderator": {"url": "http://h/room/r?secret=a/b"}}},
        "duration": 3.0,
        "size": 1024.0,
        "ratio": 0.1,
        "2": "integer-like keys come first in JavaScript",
        "1": None,
        "list": [True, False, [], {}],
    },
}


def test_body_is_compact_unescaped_and_ordered_like_json_stringify() -> None:
    expected = (
        '{"event":"meetingStarted","creationDate":1700000000123,"data":{'
        '"1":null,"2":"integer-like keys come first in JavaScript",'
        '"roomId":"reunion-x1","roomName":"Réunion d\'équipe 🎥 \\"Q3\\"\\t/\\\\",'
        '"access":{"anonymous":{"moderator":{"url":"http://h/room/r?secret=a/b"}}},'
        '"duration":3,"size":1024,"ratio":0.1,"list":[true,false,[],{}]}}'
    )
    assert wire.stringify(TRICKY) == expected


def test_body_matches_real_node() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed; the receiver re-implementations still apply")
    script = (
        "process.stdout.write(JSON.stringify(JSON.parse(require('fs').readFileSync(0, 'utf8'))))"
    )
    theirs = subprocess.run(
        [node, "-e", script],
        input=json.dumps(TRICKY).encode(),
        capture_output=True,
        check=True,
    ).stdout
    assert wire.stringify(TRICKY).encode() == theirs


def _signed(payload: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    body = wire.stringify(payload).encode()
    now = int(time.time() * 1000)
    return body, wire.headers(KEY, now, body, "evt-1")


def test_every_openvidu_receiver_accepts_a_non_ascii_body() -> None:
    body, headers = _signed(TRICKY)
    verdicts = accepted_by_all(KEY, body, headers)
    assert set(RECEIVERS) <= set(verdicts)
    assert all(verdicts.values()), verdicts


def test_ascii_only_receivers_accept_an_ascii_body() -> None:
    payload = {
        "event": "recordingEnded",
        "creationDate": 1_700_000_000_000,
        "data": {"recordingId": "r--EG_1--a", "duration": 3.6, "size": 1443846, "details": "x/y"},
    }
    body, headers = _signed(payload)
    verdicts = accepted_by_all(KEY, body, headers)
    assert set(ASCII_ONLY_RECEIVERS) <= set(verdicts)
    assert all(verdicts.values()), verdicts


def test_headers_and_signature() -> None:
    body = b'{"event":"testEvent"}'
    expected = hmac.new(KEY.encode(), b"1234." + body, hashlib.sha256).hexdigest()
    assert wire.headers(KEY, 1234, body, "e-1") == {
        "Content-Type": "application/json",
        "X-Timestamp": "1234",
        "X-Signature": expected,
        "X-Event-Id": "e-1",
    }


WRONG_SERIALIZERS = {
    "spaces": lambda p: json.dumps(p, ensure_ascii=False),
    "escaped non-ASCII": lambda p: json.dumps(p, separators=(",", ":")),
    "float with a fraction": lambda p: json.dumps(
        p, ensure_ascii=False, separators=(",", ":")
    ).replace('"d":3', '"d":3.0'),
}


@pytest.mark.parametrize("variant", sorted(WRONG_SERIALIZERS))
def test_a_body_serialized_otherwise_fails_the_node_receiver(variant: str) -> None:
    payload = {"event": "x", "creationDate": 1, "data": {"name": "é", "d": 3}}
    raw = WRONG_SERIALIZERS[variant](payload).encode()
    assert raw != wire.stringify(payload).encode()
    # Signed over these bytes, re-serialized by the receiver: the signature breaks.
    headers = wire.headers(KEY, int(time.time() * 1000), raw, None)
    assert node_like(KEY, raw, headers) is False
    right = wire.stringify(payload).encode()
    assert node_like(KEY, right, wire.headers(KEY, int(time.time() * 1000), right, None))


def test_an_old_timestamp_is_refused() -> None:
    body = wire.stringify({"event": "x", "creationDate": 1, "data": {}}).encode()
    stale = int(time.time() * 1000) - 121_000
    assert not any(
        check(KEY, body, wire.headers(KEY, stale, body, None)) for check in RECEIVERS.values()
    )
