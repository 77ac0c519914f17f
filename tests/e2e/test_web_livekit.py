"""The meeting view in LiveKit mode: it connects to the LiveKit URL with the join's token.

No LiveKit server can run here.  A plain HTTP server stands at `MEETPLANE_LIVEKIT_URL`
and records what reaches it; the test asserts that the browser's livekit-client asked
for `/rtc` with exactly the token that `POST /rooms/{roomId}/join` returned to the page.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from tests.support.browser import DESKTOP, browser
from tests.support.infra import free_port
from tests.support.platform import Platform

PUB = "/meet/api/v1"


class Recorder(BaseHTTPRequestHandler):
    """Records every request (the WebSocket upgrade included) and refuses it."""

    seen: list[str] = []

    def do_GET(self) -> None:
        Recorder.seen.append(self.path)
        self.send_response(404)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def livekit_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"ws://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, livekit_url: str) -> Iterator[Platform]:
    root: Path = tmp_path_factory.mktemp("livekit-platform")
    platform = Platform(
        root,
        services="gateway,rooms,meetings,identity",
        extra_env={"MEETPLANE_MEDIA_BACKEND": "livekit", "MEETPLANE_LIVEKIT_URL": livekit_url},
    )
    try:
        platform.wait_ready()
        yield platform
    finally:
        platform.stop()


def test_meeting_view_connects_to_livekit_with_the_join_token(
    platform: Platform, livekit_url: str
) -> None:
    with httpx.Client(base_url=platform.base, headers={"X-API-KEY": platform.api_key}) as client:
        room = client.post(f"{PUB}/rooms", json={"roomName": "LiveKit"}).json()
    with browser() as chromium:
        context = chromium.new_context(viewport=DESKTOP)
        page = context.new_page()
        page.goto(room["access"]["anonymous"]["moderator"]["url"])
        page.get_by_label("Your name").fill("Lia")
        page.get_by_role("button", name="Continue").click()
        with page.expect_response(lambda r: r.url.endswith("/join")) as joined:
            page.get_by_role("button", name="Join meeting").click()
        answer = joined.value.json()
        assert answer["url"] == livekit_url
        # The page loaded livekit-client (vendored) and tried LiveKit's signalling endpoint.
        page.wait_for_function("() => document.getElementById('room-app').dataset.livekit")
        rtc = [p for p in Recorder.seen if urlparse(p).path.startswith("/rtc")]
        assert rtc, Recorder.seen
        tokens = {parse_qs(urlparse(p).query).get("access_token", [""])[0] for p in rtc}
        assert tokens == {answer["token"]}
        # No media server answered: the page says so instead of failing silently.
        assert (
            page.locator("#meeting-error")
            .inner_text()
            .startswith("Could not connect to the media server")
        )
        context.close()
