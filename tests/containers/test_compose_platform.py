"""The whole platform as containers (deploy/compose.yaml, this checkout's images): driven
through the gateway container like a user, integration events read off the stream, and a
service container killed mid-load comes back by its restart policy with nothing lost."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from tests.support.compose import ComposePlatform
from tests.support.services import wait_until


def wait(predicate: Any, timeout: float = 60.0, what: str = "condition") -> Any:
    return wait_until(predicate, timeout, 0.3, message=what)


def test_rooms_meetings_and_recordings_through_the_gateway_container(
    compose_platform: ComposePlatform,
) -> None:
    client = compose_platform.client
    created = client.post("/api/v1/rooms", json={"roomName": "containers"})
    assert created.status_code == 201, created.text
    room = created.json()
    secret = room["access"]["anonymous"]["moderator"]["url"].split("secret=")[1]
    joined = client.post(
        f"/api/v1/rooms/{room['roomId']}/join",
        json={"secret": secret, "participantName": "Alice"},
        headers={"X-API-KEY": ""},
    )
    assert joined.status_code == 200, joined.text

    def started() -> Any:
        response = client.post("/api/v1/recordings", json={"roomId": room["roomId"]})
        return response.json() if response.status_code == 201 else None

    recording = wait(started, what="recording start")
    # Time passing is the behaviour: a recording of some length (the local backend records in
    # real time, and the API reports no duration before the recording is complete).
    time.sleep(1.5)
    stopped = client.post(f"/api/v1/recordings/{recording['recordingId']}/stop")
    assert stopped.status_code == 202, stopped.text

    def complete() -> Any:
        got = client.get(f"/api/v1/recordings/{recording['recordingId']}").json()
        return got if got["status"] == "complete" else None

    done = wait(complete, what="recording complete")
    # The gateway container streams the media from the S3 container.
    media = client.get(f"/api/v1/recordings/{recording['recordingId']}/media")
    assert media.status_code == 200 and media.content[4:8] == b"ftyp"
    assert len(media.content) == done["size"]
    assert client.delete(f"/api/v1/meetings/{room['roomId']}").status_code in (200, 204)

    wanted = {
        "RoomCreated",
        "MeetingStarted",
        "ParticipantJoined",
        "RecordingStarted",
        "RecordingReady",
        "MeetingEnded",
    }
    seen: set[str] = set()

    def published() -> bool:
        mine = [e for e in compose_platform.events() if room["roomId"] in json.dumps(e)]
        seen.update(e["type"] for e in mine)
        return wanted <= seen

    wait(published, timeout=90, what=f"integration events on the stream (seen {seen})")


def test_killed_service_container_restarts_and_nothing_is_lost(
    compose_platform: ComposePlatform,
) -> None:
    run = uuid.uuid4().hex[:6]
    names = [f"load-{run}-{i}" for i in range(40)]
    stats: Counter[str] = Counter()
    restarts_before = compose_platform.inspect("rooms")["RestartCount"]

    def create(name: str) -> str:
        """Like a real client: retry on failure with the same Idempotency-Key."""
        headers = {"X-API-KEY": compose_platform.api_key, "Idempotency-Key": uuid.uuid4().hex}
        with httpx.Client(base_url=compose_platform.base, timeout=20) as http:

            def created() -> str | None:
                try:
                    response = http.post("/api/v1/rooms", json={"roomName": name}, headers=headers)
                except httpx.HTTPError:
                    stats["transport"] += 1
                    return None
                if response.status_code == 201:
                    stats["201"] += 1
                    return str(response.json()["roomId"])
                stats[str(response.status_code)] += 1
                assert response.status_code >= 500, response.text
                return None

            return wait_until(
                created, 180, 0.5, message=lambda: f"{name} never created: {dict(stats)}"
            )

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(create, name) for name in names]
        wait(lambda: stats["201"] >= 8, what="load under way")
        compose_platform.kill("rooms")
        room_ids = {name: f.result() for name, f in zip(names, futures, strict=True)}

    state = wait(
        lambda: (
            (s := compose_platform.inspect("rooms"))["State"]["Running"]
            and s["RestartCount"] > restarts_before
            and s
        ),
        what="rooms restarted by its restart policy",
    )
    assert state["RestartCount"] == restarts_before + 1
    for name, room_id in room_ids.items():
        got = compose_platform.client.get(f"/api/v1/rooms/{room_id}")
        assert got.status_code == 200 and got.json()["roomName"] == name

    def every_room_published_once() -> Any:
        created = Counter(
            e["data"]["room"]["roomName"]
            for e in compose_platform.events()
            if e["type"] == "RoomCreated"
            and e["data"]["room"]["roomName"].startswith(f"load-{run}")
        )
        return created if set(created) == set(names) else None

    created = wait(every_room_published_once, timeout=120, what="every RoomCreated published")
    assert set(created.values()) == {1}, created  # once each: retries made no second room
