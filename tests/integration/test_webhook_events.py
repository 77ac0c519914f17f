"""The v3.8.0 webhook events from a real meeting and recording, exactly as OpenVidu Meet sends them.

rooms, meetings, recordings (local media backend, real MP4 into SeaweedFS) and the
gateway on real NATS; a receiver checks every delivery against the reference spec's
`webhooks` schemas and OpenVidu's published receivers' signature logic.
"""

from __future__ import annotations

import time
from typing import Any

from services.recordings.storage import StorageSettings
from tests.support import reference
from tests.support.http import serve_app
from tests.support.recording_platform import KEY, platform, record, room_in_meeting
from tests.support.services import wait_for
from tests.support.webhook_receivers import Receiver, accepted_by_all

INTERNAL = "/meet/internal-api/v1"
ROOM_NAME = "Réunion d'équipe 🎥"  # non-ASCII: sent as UTF-8, as OpenVidu Meet does


async def test_meeting_and_recording_webhooks(
    settings_factory: Any, storage_settings: StorageSettings
) -> None:
    receiver, filtered = Receiver(), Receiver()
    async with serve_app(receiver.app) as hook, serve_app(filtered.app) as filtered_hook:
        async with platform(settings_factory, storage_settings) as (client, _):
            await client.put(
                f"{INTERNAL}/config/webhooks", json={"enabled": True, "url": f"{hook}/hook"}
            )
            await client.post(
                "/meet/api/v1/webhooks",
                json={"url": f"{filtered_hook}/hook", "events": ["recordingEnded"]},
            )
            room = await room_in_meeting(client, roomName=ROOM_NAME)
            room_id = room["roomId"]
            recording = await record(client, room_id, seconds=1.0)
            assert (await client.delete(f"/api/v1/meetings/{room_id}")).status_code == 200

            def ended() -> bool:
                return any(
                    e["event"] == "meetingEnded" and e["data"]["roomId"] == room_id
                    for e in receiver.events()
                )

            await wait_for(ended, timeout=20)
            shown = (
                await client.get(f"/api/v1/rooms/{room_id}", params={"extraFields": "config,roles"})
            ).json()
            final = (await client.get(f"/api/v1/recordings/{recording['recordingId']}")).json()

    ours = [
        (d, e)
        for d, e in zip(receiver.received, receiver.events(), strict=True)
        if e["data"].get("roomId") == room_id
    ]
    assert [(e["event"], e["data"]["status"]) for _, e in ours] == [
        ("meetingStarted", "active_meeting"),
        ("recordingStarted", "starting"),
        ("recordingUpdated", "active"),
        ("recordingUpdated", "ending"),
        ("recordingEnded", "complete"),
        ("meetingEnded", "open"),
    ]
    now = int(time.time() * 1000)
    for delivery, event in ours:
        reference.check_webhook(reference.PUBLIC_V380, event, delivery["headers"])
        verdicts = accepted_by_all(KEY, delivery["body"], delivery["headers"])
        assert all(verdicts.values()), (event["event"], verdicts)
        assert ROOM_NAME.encode() in delivery["body"]  # UTF-8, not \u escapes
        assert list(event) == ["event", "creationDate", "data"]
        assert isinstance(event["creationDate"], int) and event["creationDate"] <= now
        assert 0 <= now - int(delivery["headers"]["x-timestamp"]) < 60_000
        assert delivery["headers"]["content-type"] == "application/json"

    # Recording events carry the recording as the API shows it at that moment.
    recording_events = [e["data"] for _, e in ours if e["event"].startswith("recording")]
    assert recording_events[-1] == final
    for data in recording_events:
        assert data["recordingId"] == recording["recordingId"] and data["roomName"] == ROOM_NAME
        assert data["layout"] == "grid" and data["encoding"] == "H264_720P_30"
    ended_data = recording_events[-1]
    assert ended_data["details"] == "Stopped using API" and ended_data["size"] > 0
    assert recording_events[2]["duration"] >= 0.9  # `ending` says how long it ran
    # Meeting events carry the room (v3.8.0 MeetRoom fields), with the status of the moment.
    started = ours[0][1]["data"]
    room_fields = {k: v for k, v in shown.items() if k in started}
    assert started == room_fields | {"status": "active_meeting"}
    assert {"config", "roles", "access", "roomName", "creationDate"} <= set(started)
    assert ours[-1][1]["data"] == started | {"status": "open"}

    # The filtered 3.9 webhook got only the recordingEnded event, with the same bytes.
    assert [e["event"] for e in filtered.events()] == ["recordingEnded"]
    assert filtered.received[0]["body"] == ours[4][0]["body"]
