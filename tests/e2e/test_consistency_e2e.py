"""Read-your-writes across services, and read models rebuilt from the services' own logs.

A command's response is only sent once its events are on the stream, and a
command that depends on another service's events first waits until its consumer
has processed what the stream held when it arrived.  So a client never has to
retry or sleep between two calls, whichever service answers each.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from tests.e2e.test_meetings_e2e import join
from tests.support.platform import Platform
from tests.support.services import wait_until


def create(platform: Platform, name: str) -> dict[str, Any]:
    response = platform.client.post("/api/v1/rooms", json={"roomName": name})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def test_each_call_sees_what_the_previous_response_did(platform: Platform) -> None:
    client = platform.client
    for i in range(10):
        # rooms -> meetings: a room created a moment ago can be joined at once.
        room = create(platform, f"ryw {i}")
        joined = join(platform, room, "moderator", f"Alice {i}")
        assert joined.status_code == 200, joined.text
        # meetings -> recordings: the meeting that join started is seen by recordings.
        started = client.post("/api/v1/recordings", json={"roomId": room["roomId"]})
        assert started.status_code == 201, started.text
        stopped = client.post(f"/api/v1/recordings/{started.json()['recordingId']}/stop")
        assert stopped.status_code == 202, stopped.text


def test_a_regenerated_link_or_a_closed_room_refuses_at_once(platform: Platform) -> None:
    client = platform.client
    room = create(platform, "link changes")
    regenerated = client.put(
        f"/api/v1/rooms/{room['roomId']}/access", json={"regenerate": ["speaker"]}
    )
    assert regenerated.status_code == 200, regenerated.text
    assert join(platform, room, "speaker", "Old Link").status_code == 401
    fresh = client.get(f"/api/v1/rooms/{room['roomId']}").json()
    closed = client.put(f"/api/v1/rooms/{room['roomId']}/status", json={"status": "closed"})
    assert closed.status_code == 200
    assert join(platform, fresh, "speaker", "Closed Room").status_code == 403


def _all_rooms(platform: Platform) -> list[str]:
    ids: list[str] = []
    token = None
    while True:
        params: dict[str, Any] = {"maxItems": 100}
        if token:
            params["nextPageToken"] = token
        page = platform.client.get("/api/v1/rooms", params=params).json()
        ids += [r["roomId"] for r in page["rooms"]]
        token = page["pagination"].get("nextPageToken")  # v3.8.0: absent on the last page
        if not token:
            return ids


def _cli(platform: Platform, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "services.runtime.cli", *args],
        env=platform.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_read_models_rebuild_from_the_log(platform: Platform) -> None:
    for i in range(5):
        create(platform, f"rebuild {i}")
    before = _all_rooms(platform)
    assert len(before) >= 5
    result = _cli(platform, "views", "rebuild", "rooms")
    assert set(result["rebuilt"]) == {"rooms_view"}
    assert _all_rooms(platform) == before
    for service in ("meetings", "recordings", "identity"):
        assert _cli(platform, "views", "rebuild", service)["rebuilt"]


def test_a_poison_event_is_parked_and_the_operator_sees_and_drops_it(platform: Platform) -> None:
    import asyncio
    import uuid

    import nats

    async def publish_poison() -> None:
        nc = await nats.connect(platform.nats.url)
        # A RoomUpdated whose room has no state: every consumer of room events fails on it.
        envelope = {
            "id": str(uuid.uuid4()),
            "type": "RoomUpdated",
            "version": 1,
            "occurred_at": "2026-01-01T00:00:00Z",
            "source": "rooms",
            "subject_id": "poisoned_room-000000",
            "data": {"changed": ["roomName"]},
        }
        await nc.jetstream().publish(
            "meetplane.evt.room.RoomUpdated", json.dumps(envelope).encode()
        )
        await nc.close()

    asyncio.run(publish_poison())
    parked: list[dict[str, Any]] = []

    def both_parked() -> list[dict[str, Any]] | None:
        parked[:] = [
            json.loads(line)
            for line in _cli_text(platform, "dlq", "list", "--json").splitlines()
            if line.strip()
        ]
        mine = [p for p in parked if p["subjectId"] == "poisoned_room-000000"]
        # Every consumer of room events fails on it; all must have parked it before the
        # drops below (waiting for two of three let the third park it after them).
        failing = {"meetings-events", "recordings-events", "janitor-events"}
        return mine if {p["consumer"] for p in mine} >= failing else None

    mine = wait_until(both_parked, 60, 0.2, message=lambda: repr(parked))
    # The consumers went on: a room created after the poison is joinable at once.
    room = create(platform, "after the poison")
    assert join(platform, room, "speaker", "Carol").status_code == 200
    shown = _cli(platform, "dlq", "show", str(mine[0]["seq"]))
    assert shown["body"]["type"] == "RoomUpdated" and shown["attempts"] >= 1
    assert "KeyError" in shown["error"] or "room" in shown["error"]
    for entry in mine:
        assert _cli(platform, "dlq", "drop", str(entry["seq"]))["dropped"] == 1
    remaining = _cli_text(platform, "dlq", "list", "--json")
    assert "poisoned_room-000000" not in remaining


def _cli_text(platform: Platform, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "services.runtime.cli", *args],
        env=platform.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout
