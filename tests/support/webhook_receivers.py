"""OpenVidu Meet's published webhook receivers, their signature check re-written in Python.

OpenVidu publishes receivers (openvidu-meet `webhooks-snippets/`) that check
`X-Signature` = HMAC-SHA256(api key, "<X-Timestamp>.<body>") and reject events
older than two minutes.  Node, Python, Ruby and PHP parse the body and serialize
it again before signing; Go, Rust, Java and .NET sign the raw body.  Each
function below is one of them; `node_receiver` can also run the real Node code.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import shutil
import subprocess
import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request, Response

MAX_WEBHOOK_AGE_MS = 120 * 1000

NODE_CHECK = r"""
const crypto = require("crypto");
const [key, timestamp, signature] = process.argv.slice(1);
let raw = "";
process.stdin.on("data", (c) => (raw += c));
process.stdin.on("end", () => {
  const body = JSON.parse(raw);
  const signedPayload = `${timestamp}.${JSON.stringify(body)}`;
  const expected = crypto.createHmac("sha256", key).update(signedPayload, "utf8").digest("hex");
  const ok = expected.length === signature.length &&
    crypto.timingSafeEqual(Buffer.from(expected, "hex"), Buffer.from(signature, "hex"));
  process.stdout.write(ok ? "valid" : "invalid");
});
"""


def _fresh(headers: dict[str, str]) -> int | None:
    lowered = {k.lower(): v for k, v in headers.items()}
    if not lowered.get("x-signature") or not lowered.get("x-timestamp"):
        return None
    try:
        timestamp = int(lowered["x-timestamp"])
    except ValueError:
        return None
    if int(time.time() * 1000) - timestamp >= MAX_WEBHOOK_AGE_MS:
        return None
    return timestamp


def _valid(key: str, headers: dict[str, str], signed: str) -> bool:
    signature = {k.lower(): v for k, v in headers.items()}["x-signature"]
    expected = hmac.new(key.encode(), signed.encode("utf-8"), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


def _js_number(text: str) -> float | int:
    # JavaScript has one number type: 3.0 parses to 3 and is written back as 3.
    value = float(text)
    return int(value) if value.is_integer() and abs(value) < 1e21 else value


def node_like(key: str, raw: bytes, headers: dict[str, str]) -> bool:
    """express.json() then JSON.stringify(body): compact, UTF-8 as is, 3.0 written as 3."""
    timestamp = _fresh(headers)
    if timestamp is None:
        return False
    body = json.loads(raw, parse_float=_js_number)
    encoded = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return _valid(key, headers, f"{timestamp}.{encoded}")


def python_snippet(key: str, raw: bytes, headers: dict[str, str]) -> bool:
    """The Flask snippet: json.dumps(body, separators=(",", ":")) (non-ASCII escaped)."""
    timestamp = _fresh(headers)
    if timestamp is None:
        return False
    body = json.loads(raw)
    return _valid(key, headers, str(timestamp) + "." + json.dumps(body, separators=(",", ":")))


def ruby_like(key: str, raw: bytes, headers: dict[str, str]) -> bool:
    """Sinatra: JSON.parse then body.to_json (compact, UTF-8 as is, floats kept as floats)."""
    timestamp = _fresh(headers)
    if timestamp is None:
        return False
    encoded = json.dumps(json.loads(raw), ensure_ascii=False, separators=(",", ":"))
    return _valid(key, headers, f"{timestamp}.{encoded}")


def php_like(key: str, raw: bytes, headers: dict[str, str]) -> bool:
    """json_decode(assoc) then json_encode(JSON_UNESCAPED_SLASHES): \\u escapes, {} becomes []."""
    timestamp = _fresh(headers)
    if timestamp is None:
        return False

    def arrays(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: arrays(v) for k, v in value.items()} if value else []
        if isinstance(value, list):
            return [arrays(v) for v in value]
        return value

    encoded = json.dumps(arrays(json.loads(raw)), separators=(",", ":"))
    return _valid(key, headers, f"{timestamp}.{encoded}")


def raw_body(key: str, raw: bytes, headers: dict[str, str]) -> bool:
    """Go, Rust, Java, .NET: the raw body as received."""
    timestamp = _fresh(headers)
    if timestamp is None:
        return False
    return _valid(key, headers, f"{timestamp}.{raw.decode('utf-8')}")


def node_receiver(key: str, raw: bytes, headers: dict[str, str]) -> bool:
    """The real Node check (JSON.parse + JSON.stringify), when `node` is installed."""
    lowered = {k.lower(): v for k, v in headers.items()}
    node = shutil.which("node")
    assert node is not None
    result = subprocess.run(
        [node, "-e", NODE_CHECK, key, lowered["x-timestamp"], lowered["x-signature"]],
        input=raw,
        capture_output=True,
        check=True,
        timeout=30,
    )
    return result.stdout == b"valid"


RECEIVERS: dict[str, Callable[[str, bytes, dict[str, str]], bool]] = {
    "node": node_like,
    "ruby": ruby_like,
    "raw (go, rust, java, .net)": raw_body,
}
# These escape non-ASCII characters when re-serializing: with OpenVidu Meet too, they
# only verify bodies that are pure ASCII.
ASCII_ONLY_RECEIVERS: dict[str, Callable[[str, bytes, dict[str, str]], bool]] = {
    "python": python_snippet,
    "php": php_like,
}


def accepted_by_all(key: str, raw: bytes, headers: dict[str, str]) -> dict[str, bool]:
    """Each receiver's verdict on one delivery."""
    verdicts = {name: check(key, raw, headers) for name, check in RECEIVERS.items()}
    if raw.isascii():
        verdicts |= {name: check(key, raw, headers) for name, check in ASCII_ONLY_RECEIVERS.items()}
    if shutil.which("node"):
        verdicts["node (real)"] = node_receiver(key, raw, headers)
    return verdicts


class Receiver:
    """An HTTP endpoint that records what it gets; `failing` makes it answer 500."""

    def __init__(self, delay: float = 0.0) -> None:
        self.received: list[dict[str, Any]] = []
        self.failing = False
        self.app = FastAPI()

        @self.app.post("/hook")
        async def hook(request: Request) -> Response:
            self.received.append({"headers": dict(request.headers), "body": await request.body()})
            await asyncio.sleep(delay)  # a deliberately slow receiver: time is the behaviour
            return Response(status_code=500 if self.failing else 200)

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(r["body"]) for r in self.received]
