"""Outbound webhooks through the gateway on real NATS: config routes, subscribers, retries, log.

Recording events are published on the stream directly (they carry the recording,
so no service is needed); `test_webhook_events.py` drives the whole platform.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from contracts.events import RecordingReady, RecordingStarted, make_envelope, subject_of
from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings
from tests.support import reference
from tests.support.http import serve_app
from tests.support.services import wait_for
from tests.support.webhook_receivers import Receiver, accepted_by_all

API_KEY = "webhook-test-key"
# The receivers of these tests listen on loopback, which webhooks may not reach by default.
RECEIVERS = "127.0.0.0/8"
INTERNAL = "/meet/internal-api/v1"
PUBLIC = "/meet/api/v1"


@pytest.fixture
async def gateway(settings_factory: Any) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    settings = settings_factory(
        GatewaySettings,
        api_key=API_KEY,
        webhook_max_attempts=3,
        webhook_allowed_networks=RECEIVERS,
    )
    async with serve_app(create_app(settings)) as base:
        async with httpx.AsyncClient(
            base_url=base, headers={"X-API-KEY": API_KEY}, timeout=30
        ) as http:
            yield http, settings


async def publish_recording_event(client_broker: Any, room_id: str, kind: str = "started") -> str:
    recording_id = f"{room_id}--EG_{uuid.uuid4().hex[:8]}--a1"
    base = {
        "recordingId": recording_id,
        "roomId": room_id,
        "roomName": "Room",
        "layout": "grid",
        "encoding": "H264_720P_30",
        "filename": f"{recording_id}.mp4",
        "startDate": 1_700_000_000_000,
    }
    data: Any
    if kind == "started":
        data = RecordingStarted(
            recordingId=recording_id,
            roomId=room_id,
            startDate=1_700_000_000_000,
            recording=base | {"status": "starting"},
        )
    else:
        data = RecordingReady(
            recordingId=recording_id,
            roomId=room_id,
            size=10,
            duration=1.5,
            objectKey="k",
            recording=base
            | {
                "status": "complete",
                "endDate": 1_700_000_001_500,
                "duration": 1.5,
                "size": 10,
                "details": "Stopped using API",
            },
        )
    envelope = make_envelope(uuid.uuid4(), data, source="recordings", subject_id=recording_id)
    js = client_broker._connection.jetstream()
    await js.publish(subject_of(type(data).__name__), envelope.model_dump_json().encode())
    return str(envelope.id)


async def webhooks_caught_up(client_broker: Any) -> bool:
    """Every webhook consumer has nothing pending and nothing unacknowledged.

    A delivery is acknowledged after it was sent (or filtered out), so this is the barrier
    after which nothing more can arrive for the events published so far.
    """
    js = client_broker._connection.jetstream()
    infos = [
        info for info in await js.consumers_info("MEETPLANE") if info.name.startswith("webhook-")
    ]
    return bool(infos) and all(i.num_pending == 0 and i.num_ack_pending == 0 for i in infos)


async def test_v380_config_routes(gateway: Any) -> None:
    http, _ = gateway
    url = f"{INTERNAL}/config/webhooks"
    assert (await http.get(url)).json() == {"enabled": False}
    missing = await http.put(url, json={"enabled": True})
    assert missing.status_code == 422 and missing.json()["details"][0]["field"] == "url"
    for bad in ({"enabled": True, "url": "nope"}, {"enabled": True, "url": "ftp://x/y"}, {}):
        assert (await http.put(url, json=bad)).status_code == 422, bad
    body = {"enabled": True, "url": "http://127.0.0.1:9/hook"}
    reference.check_request(reference.INTERNAL_V380, "PUT", "/config/webhooks", body)
    put = await http.put(url, json=body)
    assert put.status_code == 200 and put.json() == body
    reference.check_response(reference.INTERNAL_V380, "PUT", "/config/webhooks", 200, put.json())
    # `url` may be left out: the stored one stays (as OpenVidu Meet does).
    off = await http.put(url, json={"enabled": False})
    assert off.json() == {"enabled": False, "url": "http://127.0.0.1:9/hook"}
    got = await http.get(url)
    reference.check_response(reference.INTERNAL_V380, "GET", "/config/webhooks", 200, got.json())
    assert (await http.get("/internal-api/v1/config/webhooks")).json() == got.json()  # alias
    async with httpx.AsyncClient(base_url=str(http.base_url)) as anonymous:
        assert (await anonymous.get(url)).status_code == 401


async def test_test_event_is_signed_and_unreachable_urls_are_reported(gateway: Any) -> None:
    http, _ = gateway
    receiver = Receiver()
    async with serve_app(receiver.app) as hook:
        ok = await http.post(f"{INTERNAL}/config/webhooks/test", json={"url": f"{hook}/hook"})
        assert ok.status_code == 200 and ok.json() == {"message": "Webhook URL is valid"}
        reference.check_response(
            reference.INTERNAL_V380, "POST", "/config/webhooks/test", 200, ok.json()
        )
        (delivery,) = receiver.received
        assert receiver.events()[0]["event"] == "testEvent"
        assert all(accepted_by_all(API_KEY, delivery["body"], delivery["headers"]).values())
        receiver.failing = True
        rejected = await http.post(f"{INTERNAL}/config/webhooks/test", json={"url": f"{hook}/hook"})
        assert rejected.status_code == 400
        assert rejected.json()["message"] == (
            f"Webhook URL '{hook}/hook' is invalid: Server error (500 Internal Server Error)"
        )
    refused = await http.post(
        f"{INTERNAL}/config/webhooks/test", json={"url": "http://127.0.0.1:9/hook"}
    )
    assert refused.status_code == 400
    assert refused.json()["message"].endswith("is invalid: Connection refused by server")
    reference.check_response(
        reference.INTERNAL_V380, "POST", "/config/webhooks/test", 400, refused.json()
    )


def _deliveries(outcome: str) -> float:
    return (
        REGISTRY.get_sample_value("meetplane_webhook_deliveries_total", {"outcome": outcome}) or 0
    )


async def test_global_webhook_is_retried_logged_and_resent(
    gateway: Any, client_broker: Any
) -> None:
    http, _ = gateway
    receiver = Receiver()
    receiver.failing = True
    before = {o: _deliveries(o) for o in ("failed", "given_up", "resent_ok")}
    async with serve_app(receiver.app) as hook:
        await http.put(f"{INTERNAL}/config/webhooks", json={"enabled": True, "url": f"{hook}/hook"})
        event_id = await publish_recording_event(client_broker, "r1")
        # 3 attempts (the test's maximum) with JetStream redelivery in between, then given up.
        log_url = f"{INTERNAL}/config/webhooks/deliveries/{event_id}"

        async def given_up() -> dict[str, Any] | None:
            got = await http.get(log_url)
            return (
                got.json() if got.status_code == 200 and got.json()["status"] == "failed" else None
            )

        record = await wait_for(given_up, timeout=30)
        assert record["attempts"] == 3 and len(receiver.received) == 3
        assert [a["statusCode"] for a in record["history"]] == [500, 500, 500]
        assert record["lastError"] == "Server error (500 Internal Server Error)"
        assert record["payload"]["event"] == "recordingStarted"
        assert {r["headers"]["x-event-id"] for r in receiver.received} == {event_id}
        # What the webhook failure-ratio alert reads (deploy/k8s/monitoring).
        assert _deliveries("failed") == before["failed"] + 2
        assert _deliveries("given_up") == before["given_up"] + 1
        # The receiver is back: an admin sends the delivery again.
        receiver.failing = False
        resent = await http.post(f"{log_url}/resend")
        assert resent.status_code == 200
        assert resent.json()["status"] == "delivered" and resent.json()["attempts"] == 4
        assert _deliveries("resent_ok") == before["resent_ok"] + 1
        assert resent.json()["history"][-1] == {
            "date": resent.json()["lastAttemptDate"],
            "statusCode": 200,
            "resend": True,
        }
        listed = (await http.get(f"{INTERNAL}/config/webhooks/deliveries")).json()["deliveries"]
        assert [d["deliveryId"] for d in listed] == [event_id]
        last = receiver.received[-1]
        assert receiver.received[0]["body"] == last["body"]  # the same bytes every time
        assert all(accepted_by_all(API_KEY, last["body"], last["headers"]).values())
        reference.check_webhook(reference.PUBLIC_V380, receiver.events()[-1], last["headers"])
    assert (await http.get(f"{INTERNAL}/config/webhooks/deliveries/nope")).status_code == 404


async def test_a_subscriber_that_is_down_does_not_hold_up_the_others(
    gateway: Any, client_broker: Any
) -> None:
    http, _ = gateway
    up, down = Receiver(), Receiver(delay=2.0)  # slow, then failing
    down.failing = True
    async with serve_app(up.app) as up_url, serve_app(down.app) as down_url:
        a = (await http.post(f"{PUBLIC}/webhooks", json={"url": f"{down_url}/hook"})).json()
        b = (await http.post(f"{PUBLIC}/webhooks", json={"url": f"{up_url}/hook"})).json()
        ids = [await publish_recording_event(client_broker, f"room{i}") for i in range(5)]
        # All five reach the healthy subscriber while the other one is still on its first.
        await wait_for(lambda: len(up.received) >= 5, timeout=4)
        assert [e["data"]["roomId"] for e in up.events()] == [f"room{i}" for i in range(5)]
        assert len(down.received) <= 2
        logs = (await http.get(f"{PUBLIC}/webhooks/{b['webhookId']}/deliveries")).json()
        assert {d["deliveryId"] for d in logs["deliveries"]} == set(ids)
        assert all(d["status"] == "delivered" for d in logs["deliveries"])

        async def first_failing() -> bool:
            got = await http.get(f"{PUBLIC}/webhooks/{a['webhookId']}/deliveries/{ids[0]}")
            return got.status_code == 200 and got.json()["lastStatusCode"] == 500

        await wait_for(first_failing, timeout=10)


async def test_webhook_filters_by_event_and_room(gateway: Any, client_broker: Any) -> None:
    http, _ = gateway
    receiver = Receiver()
    async with serve_app(receiver.app) as hook:
        created = await http.post(
            f"{PUBLIC}/webhooks",
            json={"url": f"{hook}/hook", "events": ["recordingEnded"], "roomId": "wanted"},
        )
        assert created.status_code == 201
        await publish_recording_event(client_broker, "wanted", "started")
        await publish_recording_event(client_broker, "other", "ended")
        ended = await publish_recording_event(client_broker, "wanted", "ended")
        await wait_for(lambda: len(receiver.received) >= 1, timeout=10)
        await wait_for(lambda: webhooks_caught_up(client_broker), timeout=10)
        assert len(receiver.received) == 1
        assert receiver.received[0]["headers"]["x-event-id"] == ended
        body = receiver.events()[0]
        reference.check_webhook(reference.PUBLIC_V380, body, receiver.received[0]["headers"])
        assert body["data"]["status"] == "complete" and body["data"]["details"]


async def test_webhook_resources_crud(gateway: Any) -> None:
    http, settings = gateway
    spec = reference.MEETING_CONTROL_39
    body = {"url": "https://example.com/hook", "events": ["meetingStarted"], "roomId": "r-1"}
    reference.check_request(spec, "POST", "/webhooks", body)
    created = await http.post(f"{PUBLIC}/webhooks", json=body)
    assert created.status_code == 201
    webhook = created.json()
    reference.check_response(spec, "POST", "/webhooks", 201, webhook)
    assert webhook["webhookId"].startswith("wh-") and len(webhook["webhookId"]) == 18
    assert webhook == body | {
        "webhookId": webhook["webhookId"],
        "enabled": True,
        "creationDate": webhook["creationDate"],
    }
    assert created.headers["location"] == (
        f"{settings.base_url()}{PUBLIC}/webhooks/{webhook['webhookId']}"
    )
    path = f"{PUBLIC}/webhooks/{webhook['webhookId']}"
    got = await http.get(path)
    assert got.json() == webhook
    reference.check_response(spec, "GET", "/webhooks/{webhookId}", 200, got.json())
    listed = await http.get(f"{PUBLIC}/webhooks")
    assert listed.json() == {"webhooks": [webhook]}
    reference.check_response(spec, "GET", "/webhooks", 200, listed.json())
    # PUT replaces the definition: omitted optional fields are cleared.
    replaced = await http.put(path, json={"url": "http://example.com/other", "enabled": False})
    assert replaced.json() == {
        "webhookId": webhook["webhookId"],
        "url": "http://example.com/other",
        "enabled": False,
        "creationDate": webhook["creationDate"],
    }
    reference.check_response(spec, "PUT", "/webhooks/{webhookId}", 200, replaced.json())
    for bad in (
        {"url": "ftp://example.com"},
        {"url": "https://example.com", "events": []},
        {"url": "https://example.com", "events": ["nope"]},
        {"events": ["meetingStarted"]},
        {"url": "https://example.com", "enabled": "yes"},
        {"url": "https://example.com", "extra": 1},
    ):
        answer = await http.post(f"{PUBLIC}/webhooks", json=bad)
        assert answer.status_code == 422, bad
        reference.check_response(spec, "POST", "/webhooks", 422, answer.json())
    deleted = await http.delete(path)
    assert deleted.json() == {"message": f"Webhook '{webhook['webhookId']}' deleted successfully"}
    reference.check_response(spec, "DELETE", "/webhooks/{webhookId}", 200, deleted.json())
    for method in ("GET", "DELETE"):
        missing = await http.request(method, path)
        assert missing.status_code == 404
        assert missing.json()["message"] == f"Webhook '{webhook['webhookId']}' does not exist"
        reference.check_response(spec, method, "/webhooks/{webhookId}", 404, missing.json())
    assert (await http.post(f"{path}/test")).status_code == 404


async def test_at_most_twenty_webhooks(gateway: Any) -> None:
    http, _ = gateway
    for i in range(20):
        made = await http.post(f"{PUBLIC}/webhooks", json={"url": f"https://e.com/{i}"})
        assert made.status_code == 201
    over = await http.post(f"{PUBLIC}/webhooks", json={"url": "https://e.com/21"})
    assert over.status_code == 409
    assert (
        over.json()["message"] == "The maximum number of registered webhooks (20) has been reached"
    )
    reference.check_response(reference.MEETING_CONTROL_39, "POST", "/webhooks", 409, over.json())


async def test_two_gateways_share_each_subscriber(
    settings_factory: Any, client_broker: Any
) -> None:
    """Every event reaches a subscriber once although two replicas consume."""
    receiver = Receiver()
    async with AsyncExitStack() as stack:
        bases = [
            await stack.enter_async_context(
                serve_app(
                    create_app(
                        settings_factory(
                            GatewaySettings, api_key=API_KEY, webhook_allowed_networks=RECEIVERS
                        )
                    )
                )
            )
            for _ in range(2)
        ]
        hook = await stack.enter_async_context(serve_app(receiver.app))
        http = await stack.enter_async_context(
            httpx.AsyncClient(base_url=bases[0], headers={"X-API-KEY": API_KEY})
        )
        await http.post(f"{PUBLIC}/webhooks", json={"url": f"{hook}/hook"})
        ids = [await publish_recording_event(client_broker, f"r{i}") for i in range(20)]
        await wait_for(lambda: len(receiver.received) >= 20, timeout=15)
        await wait_for(lambda: webhooks_caught_up(client_broker), timeout=15)  # no duplicates
    assert sorted(r["headers"]["x-event-id"] for r in receiver.received) == sorted(ids)
