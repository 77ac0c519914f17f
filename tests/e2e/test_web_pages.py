"""The web pages in a real browser, through `meetplane up`: what a person with a room link,
and an admin in the console, see and do.

Chromium runs with a fake camera and microphone.  Screenshots of the main pages go to
docs/screenshots/ (shown in the README).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.browser import DESKTOP, PHONE, browser, screenshot
from tests.support.platform import Platform

PUB = "/meet/api/v1"
WITHIN = 5_000  # ms: how long a page may take to show what the test waits for


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    with browser() as launched:
        yield launched


def api(platform: Platform) -> httpx.Client:
    """A new API client: the platform's shared one may hold a connection the server has
    closed after its keep-alive timeout while a browser test ran."""
    return httpx.Client(base_url=platform.base, headers={"X-API-KEY": platform.api_key}, timeout=15)


def make_room(platform: Platform, name: str, **extra: Any) -> dict[str, Any]:
    with api(platform) as client:
        response = client.post(f"{PUB}/rooms", json={"roomName": name, **extra})
    assert response.status_code == 201, response.text
    room: dict[str, Any] = response.json()
    return room


def open_link(context: Any, url: str) -> Any:
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(url)
    return page


def join(page: Any, name: str) -> None:
    """Type a nickname, see the device preview, join the meeting."""
    page.get_by_label("Your name").fill(name)
    page.get_by_role("button", name="Continue").click()
    page.wait_for_function(
        "() => { const v = document.getElementById('preview');"
        " return v.srcObject && v.srcObject.getVideoTracks().length > 0"
        " && v.srcObject.getVideoTracks()[0].readyState === 'live'; }",
        timeout=WITHIN,
    )
    page.get_by_role("button", name="Join meeting").click()
    page.locator("#meeting-view").wait_for(state="visible", timeout=WITHIN)


def test_room_link_preview_join_evict(platform: Platform, chromium: Any) -> None:
    room = make_room(platform, "Design review")
    moderator_ctx = chromium.new_context(viewport=DESKTOP)
    speaker_ctx = chromium.new_context(viewport=PHONE)
    try:
        moderator = open_link(moderator_ctx, room["moderatorUrl"])
        assert moderator.get_by_role("heading", name="Design review").is_visible()
        assert moderator.get_by_test_id("role").inner_text() == "moderator"
        # The secret is gone from the address bar once the page has read it.
        assert "secret" not in moderator.url
        screenshot(moderator, "join-desktop")

        # Nickname checked like the API checks it.
        moderator.get_by_role("button", name="Continue").click()
        assert moderator.locator("#nickname-error").inner_text() == "Please enter your name."
        moderator.get_by_label("Your name").fill("x" * 51)
        moderator.get_by_role("button", name="Continue").click()
        assert "at most 50" in moderator.locator("#nickname-error").inner_text()

        moderator.get_by_label("Your name").fill("Mona")
        moderator.get_by_role("button", name="Continue").click()
        moderator.wait_for_function(
            "() => document.getElementById('preview').srcObject?.getVideoTracks()[0]"
            "?.readyState === 'live'",
            timeout=WITHIN,
        )
        assert moderator.locator("#camera-select option").count() >= 1
        # Mute before entering: the preview's track is disabled, the button says so.
        moderator.get_by_role("button", name="Mute microphone").click()
        assert moderator.get_by_role("button", name="Unmute microphone").is_visible()
        screenshot(moderator, "device-desktop")
        moderator.get_by_role("button", name="Join meeting").click()
        moderator.locator("#meeting-view").wait_for(state="visible", timeout=WITHIN)
        participants = moderator.locator("#participants")
        participants.get_by_text("Mona (you)").wait_for(timeout=WITHIN)
        # The local media backend says that it routes no media.
        assert moderator.locator("#local-note").is_visible()

        speaker = open_link(speaker_ctx, room["speakerUrl"])
        assert speaker.get_by_test_id("role").inner_text() == "speaker"
        screenshot(speaker, "join-phone")
        join(speaker, "Sam")
        speaker.locator("#participants").get_by_text("Sam (you)").wait_for(timeout=WITHIN)
        screenshot(speaker, "meeting-phone")

        # The moderator sees the speaker, and removes them.
        participants.get_by_text("Sam").wait_for(timeout=WITHIN)
        screenshot(moderator, "meeting-desktop")
        moderator.get_by_role("button", name="Remove Sam from the meeting").click()
        speaker.locator("#end-view").wait_for(state="visible", timeout=WITHIN)
        assert "removed you" in speaker.locator("#end-reason").inner_text()
        screenshot(speaker, "end-phone")

        # Leaving: the end view offers to join again.
        moderator.get_by_role("button", name="Leave").click()
        moderator.locator("#end-view").wait_for(state="visible", timeout=WITHIN)
        assert moderator.locator("#end-reason").inner_text() == "You left the meeting."
        assert moderator.get_by_role("link", name="Join again").is_visible()
    finally:
        moderator_ctx.close()
        speaker_ctx.close()


def test_devices_denied_still_joins(platform: Platform, chromium: Any) -> None:
    room = make_room(platform, "No camera")
    context = chromium.new_context(viewport=DESKTOP)
    try:
        page = context.new_page()
        # No camera or microphone at all: getUserMedia fails as when access is denied.
        page.add_init_script(
            "navigator.mediaDevices.getUserMedia = () =>"
            " Promise.reject(new DOMException('denied', 'NotAllowedError'));"
        )
        page.goto(room["speakerUrl"])
        page.get_by_label("Your name").fill("Nico")
        page.get_by_role("button", name="Continue").click()
        note = page.locator("#device-note")
        note.get_by_text("you will join without it").wait_for(timeout=WITHIN)
        assert "camera or microphone" in note.inner_text()
        page.get_by_role("button", name="Join meeting").click()
        page.locator("#participants").get_by_text("Nico (you)").wait_for(timeout=WITHIN)
    finally:
        context.close()


def test_link_error_pages(platform: Platform, chromium: Any) -> None:
    context = chromium.new_context(viewport=DESKTOP)
    try:
        page = context.new_page()
        room = make_room(platform, "Errors")
        base = room["moderatorUrl"].split("?")[0]

        response = page.goto(base + "?secret=wrong")
        assert response.status == 403
        assert page.get_by_role("heading", name="This link no longer works").is_visible()
        screenshot(page, "error-link")

        # A regenerated link: the old one stops working.
        old = room["speakerUrl"]
        client = api(platform)
        answer = client.put(
            f"{PUB}/rooms/{room['roomId']}/access", json={"regenerate": ["speaker"]}
        )
        assert answer.status_code == 200, answer.text
        assert page.goto(old).status == 403

        # A closed room.
        client.put(f"{PUB}/rooms/{room['roomId']}/status", json={"status": "closed"})
        response = page.goto(room["moderatorUrl"])
        assert response.status == 409
        assert page.get_by_role("heading", name="This room is closed").is_visible()
        screenshot(page, "error-closed")

        # A deleted room.
        assert client.delete(f"{PUB}/rooms/{room['roomId']}").status_code in (200, 202)
        response = page.goto(room["moderatorUrl"])
        assert response.status == 404
        assert page.get_by_role("heading", name="This room no longer exists").is_visible()

        # No secret, bad room id: HTML pages, never JSON.
        response = page.goto(base)
        assert response.status == 400
        assert "text/html" in response.headers["content-type"]
        response = page.goto(f"{platform.base}/room/bad%20id?secret=x")
        assert response.status == 404
        assert "text/html" in response.headers["content-type"]
    finally:
        context.close()


def test_secret_never_in_logs(platform: Platform) -> None:
    room = make_room(platform, "Quiet")
    secret = room["moderatorUrl"].split("secret=")[1]
    assert httpx.get(room["moderatorUrl"]).status_code == 200
    assert secret not in platform.logs(tail=100_000)


def test_docs_render_offline(platform: Platform, chromium: Any) -> None:
    context = chromium.new_context(viewport=DESKTOP)
    try:
        page = context.new_page()
        outside: list[str] = []

        def only_gateway(route: Any) -> None:
            if route.request.url.startswith(platform.base):
                route.continue_()
            else:
                outside.append(route.request.url)
                route.abort()

        page.route("**/*", only_gateway)
        page.goto(f"{platform.base}/docs")
        page.locator(".swagger-ui .info .title").wait_for(timeout=WITHIN * 2)
        assert page.get_by_text("meetplane").first.is_visible()
        assert outside == []
    finally:
        context.close()
