"""Users and sign-in through `meetplane up` and a second gateway process on the same NATS.

A user is created, signs in, refreshes, works with rooms through either
gateway; a password change refuses the old refresh token; deleting the user
refuses every token of theirs within one second on every gateway replica.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.runtime import nats_auth
from services.runtime.launcher import livekit_secret
from tests.support.infra import free_port
from tests.support.platform import Platform
from tests.support.services import wait_until

PUB, INT = "/meet/api/v1", "/meet/internal-api/v1"
REVOKED_WITHIN = 1.0


@pytest.fixture(scope="module")
def second_gateway(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`meetplane serve gateway` with its own data dir, sharing the signing key (as in k8s)."""
    subset = os.environ.get("MEETPLANE_E2E_SERVICES")
    if subset and "identity" not in subset.split(","):
        pytest.skip("MEETPLANE_E2E_SERVICES runs no identity service")
    root: Path = tmp_path_factory.mktemp("gateway-2")
    port = free_port()
    env = {
        **platform.env,
        "MEETPLANE_DATA_DIR": str(root),
        "MEETPLANE_HTTP_PORT": str(port),
        "MEETPLANE_AUTH_SIGNING_KEY": (platform.data_dir / "auth-signing-key").read_text().strip(),
        "MEETPLANE_READY_SERVICES": "rooms,identity",
        # The secrets `up` generated, as a second Deployment gets them from the same Secret.
        "MEETPLANE_LIVEKIT_API_SECRET": livekit_secret(platform.data_dir),
        "MEETPLANE_NATS_USER": "gateway",
        "MEETPLANE_NATS_PASSWORD": nats_auth.user_password(platform.data_dir, "gateway"),
        "MEETPLANE_NATS_INBOX_PREFIX": nats_auth.inbox_prefix("gateway"),
    }
    env.pop("MEETPLANE_NATS_PORT", None)
    log = (root / "gateway.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "services.runtime.cli", "serve", "gateway"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool:
            assert process.poll() is None, (root / "gateway.log").read_text()
            return httpx.get(f"{base}/readyz", timeout=2).status_code == 200

        wait_until(
            ready,
            180,
            0.2,
            ignore=(httpx.HTTPError,),
            message=lambda: (root / "gateway.log").read_text()[-3000:],
        )
        yield base
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def refused_everywhere(bases: list[str], path: str, headers: dict[str, str]) -> float:
    """Seconds until every gateway answers 401 to `headers` on `path` (fails after 1 s)."""
    started = time.monotonic()
    pending = list(bases)
    while pending:
        pending = [b for b in pending if httpx.get(b + path, headers=headers).status_code != 401]
        elapsed = time.monotonic() - started
        assert elapsed < REVOKED_WITHIN, f"still accepted after {elapsed:.2f}s by {pending}"
    return time.monotonic() - started


def test_user_signs_in_works_with_rooms_and_is_cut_off_on_every_gateway(
    platform: Platform, second_gateway: str
) -> None:
    one, two = platform.base, second_gateway
    key = {"X-API-KEY": platform.api_key}
    admin_password = (platform.data_dir / "admin-password").read_text().strip()
    root = httpx.post(
        f"{two}{INT}/auth/login", json={"userId": "admin", "password": admin_password}
    )
    assert root.status_code == 200, root.text

    user = {"userId": "zoe", "name": "Zoe", "role": "room_manager", "password": "first-pass"}
    created = httpx.post(f"{one}{PUB}/users", json=user, headers=key)
    assert created.status_code == 201, created.text
    assert "password" not in created.text
    login = httpx.post(f"{two}{INT}/auth/login", json={"userId": "zoe", "password": "first-pass"})
    assert login.status_code == 200, login.text
    tokens: dict[str, Any] = login.json()
    refreshed = httpx.post(
        f"{one}{INT}/auth/refresh", headers={"X-Refresh-Token": tokens["refreshToken"]}
    )
    assert refreshed.status_code == 200, refreshed.text
    access = bearer(refreshed.json()["accessToken"])

    room = httpx.post(f"{two}{PUB}/rooms", json={"roomName": "Zoe's"}, headers=access)
    assert room.status_code == 201, room.text
    assert room.json()["owner"] == "zoe"
    room_id = room.json()["roomId"]
    for base in (one, two):
        listed = httpx.get(f"{base}{PUB}/rooms", headers=access)
        assert [r["roomId"] for r in listed.json()["rooms"]] == [room_id]
        assert httpx.get(f"{base}{PUB}/rooms/{room_id}", headers=access).status_code == 200
    config = {"config": {"chat": {"enabled": False}}}
    updated = httpx.put(f"{one}{PUB}/rooms/{room_id}/config", json=config, headers=access)
    assert updated.status_code == 200, updated.text
    keyed = httpx.post(f"{one}{PUB}/rooms", json={"roomName": "keyed"}, headers=key).json()
    assert keyed["owner"] == "admin"  # v3.8.0: rooms created with an API key are the root's
    foreign = httpx.get(f"{two}{PUB}/rooms/{keyed['roomId']}", headers=access)
    assert foreign.status_code == 403

    changed = httpx.post(
        f"{one}{INT}/users/change-password",
        json={"currentPassword": "first-pass", "newPassword": "second-pass"},
        headers=access,
    )
    assert changed.status_code == 200, changed.text
    old_refresh = httpx.post(
        f"{two}{INT}/auth/refresh", headers={"X-Refresh-Token": tokens["refreshToken"]}
    )
    assert old_refresh.status_code == 400
    assert old_refresh.json()["error"] == "Refresh Token Error"
    refused_everywhere([one, two], f"{INT}/users/me", access)

    fresh = changed.json()
    for base in (one, two):
        assert httpx.get(f"{base}{INT}/users/me", headers=bearer(fresh["accessToken"])).is_success
    deleted = httpx.delete(f"{two}{PUB}/users/zoe", headers=key)
    assert deleted.status_code == 200, deleted.text
    took = refused_everywhere([one, two], f"{PUB}/rooms", bearer(fresh["accessToken"]))
    print(f"\ndeleted user's access token refused on both gateways after {took * 1000:.0f} ms")
    gone = httpx.post(
        f"{one}{INT}/auth/refresh", headers={"X-Refresh-Token": fresh["refreshToken"]}
    )
    assert gone.status_code == 400
