"""The webhook wire format exactly as OpenVidu Meet sends it: body bytes, headers, signature.

OpenVidu Meet (Node) sends `JSON.stringify({event, creationDate, data})` and signs
`"<timestamp>.<body>"` with HMAC-SHA256 keyed by the API key, hex-encoded, in
`X-Signature`, the timestamp (milliseconds) in `X-Timestamp`.  Receivers written
for it (OpenVidu's own snippets in Node, Python, Ruby, PHP) parse the body and
serialize it again before checking the signature, so the bytes must be what
their serializers produce: compact, non-ASCII characters unescaped, `/` not
escaped, integers without a fractional part, keys in insertion order (JavaScript
puts integer-like keys first).  `stringify` reproduces `JSON.stringify`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
from decimal import Decimal
from typing import Any

# Integration event type → OpenVidu Meet webhook event.
WEBHOOK_EVENTS = {
    "MeetingStarted": "meetingStarted",
    "MeetingEnded": "meetingEnded",
    "RecordingStarted": "recordingStarted",
    "RecordingActivated": "recordingUpdated",
    "RecordingStopped": "recordingUpdated",
    "RecordingReady": "recordingEnded",
    "RecordingFailed": "recordingEnded",
}
V380_EVENTS = (
    "meetingStarted",
    "meetingEnded",
    "recordingStarted",
    "recordingUpdated",
    "recordingEnded",
)
# The 3.9 line's event filter accepts these too; meetplane delivers the v3.8.0 five.
FILTER_EVENTS = (*V380_EVENTS, "participantJoined", "participantLeft")
TEST_EVENT = "testEvent"

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_ARRAY_INDEX = re.compile(r"^(0|[1-9][0-9]*)$")


def js_number(value: float) -> str:
    """`Number.prototype.toString()` of a double (what JSON.stringify writes)."""
    if not math.isfinite(value):
        return "null"
    if value == int(value) and abs(value) < 1e21:
        return str(int(value))  # also -0 → "0"
    sign, digits, exponent = Decimal(repr(value)).as_tuple()
    text = "".join(map(str, digits)).rstrip("0") or "0"
    k = len(text)
    n = int(exponent) + len(digits)  # value = 0.<text> * 10^n
    if k <= n <= 21:
        out = text + "0" * (n - k)
    elif 0 < n <= 21:
        out = f"{text[:n]}.{text[n:]}"
    elif -6 < n <= 0:
        out = "0." + "0" * (-n) + text
    else:
        e = n - 1
        mantissa = text if k == 1 else f"{text[0]}.{text[1:]}"
        out = f"{mantissa}e{'+' if e >= 0 else '-'}{abs(e)}"
    return ("-" if sign else "") + out


def _string(value: str) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _keys(mapping: dict[str, Any]) -> list[str]:
    index = sorted((k for k in mapping if _ARRAY_INDEX.match(k) and int(k) < 2**32 - 1), key=int)
    return index + [k for k in mapping if k not in set(index)]


def stringify(value: Any) -> str:
    """`JSON.stringify(value)` for JSON-like Python values."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return js_number(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, dict):
        items = ((str(k), v) for k, v in value.items())
        pairs = dict(items)
        return "{" + ",".join(f"{_string(k)}:{stringify(pairs[k])}" for k in _keys(pairs)) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(stringify(v) for v in value) + "]"
    raise TypeError(f"not JSON: {type(value).__name__}")


def body(event: str, creation_date: int, data: dict[str, Any]) -> bytes:
    """The webhook body: `{event, creationDate, data}` in OpenVidu Meet's key order."""
    return stringify({"event": event, "creationDate": creation_date, "data": data}).encode()


def sign(secret: str, timestamp: int, payload: bytes) -> str:
    """HMAC-SHA256 of `<timestamp>.<body>` keyed by the API key, hex."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()


def headers(secret: str, timestamp: int, payload: bytes, event_id: str | None) -> dict[str, str]:
    """OpenVidu Meet's webhook headers; `X-Event-Id` (meetplane) lets receivers drop repeats."""
    out = {
        "Content-Type": "application/json",
        "X-Timestamp": str(timestamp),
        "X-Signature": sign(secret, timestamp, payload),
    }
    if event_id:
        out["X-Event-Id"] = event_id
    return out
