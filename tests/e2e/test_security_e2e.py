"""A default `meetplane up` from outside, as an attacker would try it (issue 14).

No secret of the source code works against it, its NATS refuses clients without
a service's credentials, brute force gets 429, webhooks cannot reach internal
addresses, and its responses carry the security headers.
"""

from __future__ import annotations

import asyncio
import json
import stat
import time
from collections.abc import Iterator
from typing import Any

import httpx
import nats
import pytest

from services.gateway.livekit_webhooks import sign_livekit_webhook
from services.runtime import nats_auth
from services.runtime.secrets import DEV_LIVEKIT_API_SECRET
from tests.support.infra import free_port
from tests.support.platform import EmbeddedUp


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedUp]:
    platform = EmbeddedUp(
        tmp_path_factory.mktemp("secure") / "up",
        extra_env={"MEETPLANE_JOIN_FAILURES_PER_ADDRESS": "5 per 3 seconds"},
    )
    try:
        platform.wait_ready()
        yield platform
    finally:
        platform.close()


def new_room(up: EmbeddedUp) -> dict[str, Any]:
    created = up.client.post("/api/v1/rooms", json={"roomName": "target"})
    assert created.status_code == 201, created.text
    return dict(created.json())


def secret(room: dict[str, Any]) -> str:
    return str(room["access"]["anonymous"]["speaker"]["url"].split("secret=")[1])


def test_no_secret_of_the_source_code_and_none_printed(up: EmbeddedUp) -> None:
    generated = up.data_dir / "livekit-api-secret"
    assert stat.S_IMODE(generated.stat().st_mode) == 0o600
    assert generated.read_text() != DEV_LIVEKIT_API_SECRET
    for name in ("auth-signing-key", "storage-secret", "nats-users/gateway"):
        path = up.data_dir / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.read_text().strip() not in up.output()
    assert up.api_key not in up.output()


def test_a_livekit_webhook_forged_with_the_development_secret_is_refused(up: EmbeddedUp) -> None:
    room = new_room(up)
    joined = up.client.post(
        f"/api/v1/rooms/{room['roomId']}/join",
        json={"secret": secret(room), "participantName": "Alice"},
    )
    assert joined.status_code == 200, joined.text
    body = json.dumps(
        {"event": "room_finished", "id": "EV_forged", "room": {"name": room["roomId"]}}
    ).encode()
    forged = sign_livekit_webhook(body, "devkey", DEV_LIVEKIT_API_SECRET)
    refused = up.client.post(
        "/api/v1/livekit/webhook",
        content=body,
        headers={"content-type": "application/webhook+json", "Authorization": forged},
    )
    assert refused.status_code == 401
    meeting = up.client.get(f"/api/v1/meetings/{room['roomId']}")
    assert meeting.status_code == 200 and meeting.json()["participants"]


def test_nats_refuses_clients_without_a_services_credentials(up: EmbeddedUp) -> None:
    url = f"nats://127.0.0.1:{up.nats_port}"

    async def probe() -> tuple[str, list[str]]:
        try:
            await nats.connect(url, allow_reconnect=False, max_reconnect_attempts=0)
            anonymous = "connected"
        except Exception as exc:
            anonymous = type(exc).__name__
        # With a service's own credentials, still no other service's commands or replies.
        errors: list[str] = []

        async def on_error(exc: Exception) -> None:
            errors.append(str(exc))

        janitor = await nats.connect(
            url,
            user="janitor",
            password=nats_auth.user_password(up.data_dir, "janitor"),
            inbox_prefix=nats_auth.inbox_prefix("janitor"),
            allow_reconnect=False,
            error_cb=on_error,
        )
        try:
            await janitor.subscribe("_INBOX_gateway.>")
            with pytest.raises((nats.errors.NoRespondersError, nats.errors.TimeoutError)):
                await janitor.request("meetplane.cmd.rooms.list", b"{}", timeout=2)
            await janitor.flush()
        finally:
            await janitor.close()
        return anonymous, errors

    anonymous, errors = asyncio.run(probe())
    assert anonymous != "connected"
    assert any("_inbox_gateway" in e.lower() for e in errors), errors
    assert any("meetplane.cmd.rooms.list" in e for e in errors), errors


def test_wrong_join_secrets_get_429_then_recover(up: EmbeddedUp) -> None:
    room = new_room(up)
    plain = httpx.Client(base_url=up.base, timeout=10)  # no API key: a stranger

    def join(guess: str) -> httpx.Response:
        return plain.post(
            f"/api/v1/rooms/{room['roomId']}/join", json={"secret": guess, "participantName": "Eve"}
        )

    statuses = [join(f"guess-{i}").status_code for i in range(8)]
    assert statuses[:5] == [401] * 5 and set(statuses[5:]) == {429}
    limited = join(secret(room))
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    started = time.monotonic()
    while (answer := join(secret(room))).status_code == 429:
        assert time.monotonic() - started < 15, "the limit never recovered"
    assert answer.status_code == 200


def test_guessing_a_recordings_share_secret_gets_429(up: EmbeddedUp) -> None:
    room = new_room(up)
    joined = up.client.post(
        f"/api/v1/rooms/{room['roomId']}/join",
        json={"secret": secret(room), "participantName": "Rec"},
    )
    assert joined.status_code == 200, joined.text
    started = up.client.post("/api/v1/recordings", json={"roomId": room["roomId"]})
    assert started.status_code == 201, started.text
    recording = started.json()["recordingId"]
    stranger = httpx.Client(base_url=up.base, timeout=10)
    statuses = [
        stranger.get(f"/api/v1/recordings/{recording}", params={"recordingSecret": f"g{i}"})
        for i in range(10)
    ]
    codes = [r.status_code for r in statuses]
    assert set(codes) <= {400, 429} and codes[-1] == 429, codes
    assert int(statuses[-1].headers["retry-after"]) >= 1


@pytest.mark.parametrize(
    "target",
    ["http://127.0.0.1:{port}/", "http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/"],
)
def test_webhook_urls_cannot_reach_internal_addresses(up: EmbeddedUp, target: str) -> None:
    url = target.format(port=free_port())
    config = "/meet/internal-api/v1/config/webhooks"
    assert up.client.put(config, json={"enabled": True, "url": url}).status_code == 400
    assert up.client.post(f"{config}/test", json={"url": url}).status_code == 400
    assert up.client.post("/meet/api/v1/webhooks", json={"url": url}).status_code == 400


def test_responses_carry_the_security_headers(up: EmbeddedUp) -> None:
    for response in (up.client.get("/api/v1/rooms"), up.client.get("/api/v1/rooms/nope")):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert response.headers["cache-control"] == "no-store"
        assert "server" not in response.headers


def test_no_service_was_refused_anything_by_nats(up: EmbeddedUp) -> None:
    """Every service's own work fits its permissions (the table is not too narrow)."""
    refused = [
        f"{log.name}: {line.strip()[:200]}"
        for log in sorted((up.data_dir / "logs").glob("*.log"))
        for line in log.read_text(errors="replace").splitlines()
        if "permissions violation" in line.lower()
    ]
    assert refused == []
