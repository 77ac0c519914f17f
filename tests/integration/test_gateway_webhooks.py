"""Outbound webhooks: configured through the API, signed, retried by JetStream redelivery."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from typing import Any

import httpx
from fastapi import FastAPI, Request, Response

from contracts.events import MeetingStarted, RoomStatusChanged, make_envelope, subject_of
from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings
from tests.support.http import serve_app
from tests.support.services import wait_for

API_KEY = "webhook-test-key"


def receiver(fail_first: int) -> tuple[FastAPI, list[dict[str, Any]]]:
    received: list[dict[str, Any]] = []
    app = FastAPI()

    @app.post("/hook")
    async def hook(request: Request) -> Response:
        body = await request.body()
        received.append({"headers": dict(request.headers), "body": body})
        return Response(status_code=500 if len(received) <= fail_first else 200)

    return app, received


async def test_events_are_delivered_signed_and_retried(
    settings_factory: Any, client_broker: Any
) -> None:
    settings = settings_factory(GatewaySettings, api_key=API_KEY)
    hook_app, received = receiver(fail_first=2)
    async with serve_app(hook_app) as hook_url, serve_app(create_app(settings)) as gateway:
        async with httpx.AsyncClient(base_url=gateway, headers={"X-API-KEY": API_KEY}) as http:
            bad = await http.put("/api/v1/config/webhooks", json={"enabled": True})
            assert bad.status_code == 422 and bad.json()["details"][0]["field"] == "url"
            bad = await http.put("/api/v1/config/webhooks", json={"enabled": True, "url": "nope"})
            assert bad.status_code == 422
            ok = await http.put(
                "/api/v1/config/webhooks", json={"enabled": True, "url": f"{hook_url}/hook"}
            )
            assert ok.status_code == 200, ok.text
            assert (await http.get("/api/v1/config/webhooks")).json()["enabled"] is True

            js = client_broker._connection.jetstream()
            started = make_envelope(
                uuid.uuid4(),
                MeetingStarted(meetingId="m1", roomId="r1", startedAt=5),
                source="meetings",
                subject_id="m1",
            )
            ignored = make_envelope(
                uuid.uuid4(),
                RoomStatusChanged(roomId="r1", status="closed"),
                source="rooms",
                subject_id="r1",
            )
            await js.publish(subject_of("RoomStatusChanged"), ignored.model_dump_json().encode())
            await js.publish(subject_of("MeetingStarted"), started.model_dump_json().encode())
            await wait_for(lambda: len(received) >= 3, timeout=20)

    assert len(received) == 3  # two failures, then delivered; room events are not webhooks
    assert {r["headers"]["x-event-id"] for r in received} == {str(started.id)}
    last = received[-1]
    expected = hmac.new(
        API_KEY.encode(),
        f"{last['headers']['x-timestamp']}.".encode() + last["body"],
        hashlib.sha256,
    ).hexdigest()
    assert last["headers"]["x-signature"] == expected
    assert b'"event":"meetingStarted"' in last["body"]


async def test_test_endpoint_reports_unreachable_url(settings_factory: Any) -> None:
    settings = settings_factory(GatewaySettings, api_key=API_KEY)
    async with serve_app(create_app(settings)) as gateway:
        async with httpx.AsyncClient(base_url=gateway, headers={"X-API-KEY": API_KEY}) as http:
            response = await http.post(
                "/api/v1/config/webhooks/test", json={"url": "http://127.0.0.1:9/hook"}
            )
    assert response.status_code == 422
    assert response.json()["error"] == "webhook_unreachable"
