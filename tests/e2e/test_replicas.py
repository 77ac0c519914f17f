"""Scale-out proof: two replicas of every service, two gateways, a 3-node NATS cluster and
PostgreSQL stores; one replica of each service and one NATS node are SIGKILLed mid-load.

Clients behave like real ones: a failed request (connection refused, 503) is retried on
the other gateway with the same Idempotency-Key.  Afterwards every accepted command must
be reflected exactly once, every integration event must be on the stream exactly once,
and no request may have had a 5xx answer from a living gateway.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.cluster import Cluster
from tests.support.infra import drop_schemas, postgres_dsn, schema_prefix
from tests.support.services import stream_events, wait_for, wait_until

SERVICES = ["rooms", "meetings", "recordings", "janitor"]
USERS = 8
ROOMS_PER_USER = 5


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    dsn = postgres_dsn()
    if dsn is None:
        pytest.skip("no PostgreSQL server answers at MEETPLANE_TEST_POSTGRES_DSN")
    prefix = schema_prefix()
    cluster = Cluster(tmp_path, dsn, prefix, SERVICES)
    try:
        cluster.wait_ready()
        yield cluster
    finally:
        cluster.stop()
        drop_schemas(dsn, prefix)


class Client:
    """A user: failover between gateways, idempotency keys, 5xx bookkeeping."""

    def __init__(self, gateways: list[str], key: str, stats: Counter[str]) -> None:
        self.gateways = gateways
        self.headers = {"X-API-KEY": key}
        self.stats = stats
        self.turn = 0

    async def send(
        self,
        http: httpx.AsyncClient,
        method: str,
        path: str,
        retry_ok: tuple[str, ...] = (),
        **kwargs: Any,
    ) -> httpx.Response:
        """Send until answered below 500; on a retry, `retry_ok` errors mean "done before"."""
        headers = {**self.headers, "Idempotency-Key": uuid.uuid4().hex}
        attempt = 0

        async def answered() -> httpx.Response | None:
            nonlocal attempt
            base = self.gateways[self.turn % len(self.gateways)]
            attempt += 1
            try:
                response = await http.request(
                    method, base + path, headers=headers, timeout=15, **kwargs
                )
            except httpx.HTTPError:
                self.stats["gateway_unreachable"] += 1
                self.turn += 1
                return None
            if (
                attempt > 1
                and response.status_code < 500
                and response.json().get("error") in retry_ok
            ):
                self.stats["retry_found_done"] += 1
                return response
            if response.status_code < 500:
                self.stats[f"{method} {response.status_code}"] += 1
                return response
            self.stats["5xx"] += 1
            self.stats[f"5xx:{response.text[:80]}"] += 1
            self.turn += 1
            return None

        try:
            return await wait_for(answered, timeout=60, interval=0.2)  # type: ignore[no-any-return]
        except TimeoutError:
            raise AssertionError(f"{method} {path} never succeeded: {dict(self.stats)}") from None


async def user(client: Client, n: int, accepted: dict[str, int]) -> None:
    """Per room: create, join, end the meeting, close, reopen, delete."""
    async with httpx.AsyncClient() as http:
        for i in range(n):
            created = await client.send(
                http, "POST", "/api/v1/rooms", json={"roomName": f"load {i}"}
            )
            assert created.status_code == 201, created.text
            room = created.json()
            room_id = room["roomId"]
            accepted[room_id] = 0
            secret = room["access"]["anonymous"]["moderator"]["url"].split("secret=")[1]
            joined = await client.send(
                http,
                "POST",
                f"/api/v1/rooms/{room_id}/join",
                retry_ok=("participant_already_joined",),
                json={"secret": secret, "participantName": "Load User"},
            )
            assert joined.status_code in (200, 409), joined.text

            # The rooms service learns of the meeting from the meetings service's
            # events: a client that ends it and then closes the room waits until the
            # room shows the meeting, then until it shows it gone (else the close can
            # reach the room before the start does and be scheduled: 202).
            async def room_status(room_id: str = room_id) -> str:
                room_now = await client.send(http, "GET", f"/api/v1/rooms/{room_id}")
                return str(room_now.json().get("status"))

            async def meeting_shown() -> bool:
                return await room_status() == "active_meeting"

            async def meeting_gone() -> bool:
                return await room_status() != "active_meeting"

            await wait_for(meeting_shown, timeout=60)
            ended = await client.send(
                http, "DELETE", f"/api/v1/meetings/{room_id}", retry_ok=("meeting_not_found",)
            )
            assert ended.status_code in (200, 404), ended.text

            # Until the end reaches the rooms service, v3.8.0 answers a close with 202
            # (scheduled for the meeting's end).
            await wait_for(meeting_gone, timeout=60)
            for status in ("closed", "open"):
                changed = await client.send(
                    http, "PUT", f"/api/v1/rooms/{room_id}/status", json={"status": status}
                )
                assert changed.status_code == 200, changed.text
                accepted[room_id] += 1
            deleted = await client.send(
                http, "DELETE", f"/api/v1/rooms/{room_id}", params={"withMeeting": "force"}
            )
            assert deleted.status_code == 200, deleted.text
            client.turn += 1  # spread users over both gateways


def test_replicas_survive_kills_with_exactly_once_effects(cluster: Cluster) -> None:
    stats: Counter[str] = Counter()
    accepted: dict[str, int] = {}

    def chaos() -> None:  # once the load is under way: every user has a room
        wait_until(lambda: len(accepted) >= USERS, 120, 0.1)
        for service in [*SERVICES, "gateway"]:
            cluster.replicas[service][0].kill9()
        cluster.nats[2].kill()

    killer = threading.Thread(target=chaos)
    killer.start()

    async def load() -> None:
        await asyncio.gather(
            *(
                user(Client(cluster.gateways, cluster.api_key, stats), ROOMS_PER_USER, accepted)
                for _ in range(USERS)
            )
        )

    started = time.monotonic()
    asyncio.run(load())
    killer.join()
    elapsed = time.monotonic() - started

    # Bring the dead back: they must converge on the same state.
    cluster.nats[2].start()
    for service in [*SERVICES, "gateway"]:
        cluster.replicas[service][0].start()
    cluster.wait_ready()

    expected_rooms = USERS * ROOMS_PER_USER
    seen: list[tuple[list[dict[str, Any]], dict[str, Counter[str]]]] = []

    def all_on_stream() -> bool:
        events = asyncio.run(stream_events(cluster.nats_url, idle=1.0))
        by_type: dict[str, Counter[str]] = {}
        for e in events:
            room_of = e["data"].get("roomId") or e["subject_id"]
            by_type.setdefault(e["type"], Counter())[room_of] += 1
        seen[:] = [(events, by_type)]
        flips = by_type.get("RoomStatusChanged", Counter())
        done = by_type.get("RoomDeleted", Counter())
        return set(done) >= set(accepted) and all(flips[r] >= n for r, n in accepted.items())

    wait_until(
        all_on_stream,
        60,
        1.0,
        message=lambda: (
            f"events missing: {len(seen[0][1].get('RoomCreated', {}))} created of "
            f"{len(accepted)}\n{cluster.logs()}"
        ),
    )
    events, by_type = seen[0]
    created = by_type.get("RoomCreated", Counter())
    flips = by_type.get("RoomStatusChanged", Counter())

    ids = [e["id"] for e in events]
    print(
        f"\nreplicas: {expected_rooms} rooms x (create, join, end, close, open, delete) in "
        f"{elapsed:.1f}s; requests {dict(stats)}; events on stream {len(events)}, "
        f"by type { {k: sum(v.values()) for k, v in by_type.items()} }"
    )
    assert len(accepted) == expected_rooms
    assert len(ids) == len(set(ids)), "an event id is on the stream twice"
    assert set(created) == set(accepted), "a room was created that no client was told about"
    assert all(n == 1 for n in created.values()), "a RoomCreated is on the stream twice"
    assert dict(flips) == accepted, "status changes on the stream differ from accepted ones"
    for kind in ("RoomDeleted", "MeetingStarted", "ParticipantJoined", "MeetingEnded"):
        counts = by_type.get(kind, Counter())
        assert set(counts) == set(accepted) and set(counts.values()) == {1}, (kind, counts)
    assert stats["5xx"] == 0, (
        f"5xx answers from living gateways: {dict(stats)}\n{cluster.logs(tail=5, errors_only=True)}"
    )

    listings = []
    for base in cluster.gateways:
        page = httpx.get(
            f"{base}/api/v1/rooms",
            params={"maxItems": 100, "roomName": "load", "roomNameMatchMode": "partial"},
            headers={"X-API-KEY": cluster.api_key},
        ).json()
        listings.append({r["roomId"]: r["status"] for r in page["rooms"]})
    assert listings[0] == listings[1] == {}, "deleted rooms are gone from every replica's view"
