"""The web pages in a real browser, through `meetplane up`: what a person with a room link,
and an admin in the console, see and do.

Chromium runs with a fake camera and microphone.  Screenshots of the main pages go to
docs/screenshots/ (shown in the README).
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.browser import DESKTOP, PHONE, browser, screenshot, serious_violations
from tests.support.platform import Platform
from tests.support.services import wait_until

PUB = "/meet/api/v1"
WITHIN = 5_000  # ms: how long a page may take to show what the test waits for
LIVE = 2_000  # ms: a live update (evicted, meeting ended, participant joined) reaches a page


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


def link(room: dict[str, Any], role: str) -> str:
    """The room's link for a role (moderator, speaker, recording)."""
    url: str = room["access"]["anonymous"][role]["url"]
    return url


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
        moderator = open_link(moderator_ctx, link(room, "moderator"))
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

        speaker = open_link(speaker_ctx, link(room, "speaker"))
        assert speaker.get_by_test_id("role").inner_text() == "speaker"
        screenshot(speaker, "join-phone")
        join(speaker, "Sam")
        speaker.locator("#participants").get_by_text("Sam (you)").wait_for(timeout=WITHIN)
        screenshot(speaker, "meeting-phone")

        # The moderator sees the speaker, and removes them.
        participants.get_by_text("Sam").wait_for(timeout=WITHIN)
        screenshot(moderator, "meeting-desktop")
        # Live updates come from the room's event stream: no polling while it is open.
        speaker.wait_for_function(
            "() => document.getElementById('room-app').dataset.live === 'open'"
        )
        moderator.get_by_role("button", name="Remove Sam from the meeting").click()
        speaker.locator("#end-view").wait_for(state="visible", timeout=LIVE)
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


def test_meeting_ended_by_a_moderator_shows_why(platform: Platform, chromium: Any) -> None:
    room = make_room(platform, "Short call")
    moderator_ctx = chromium.new_context(viewport=DESKTOP)
    speaker_ctx = chromium.new_context(viewport=PHONE)
    try:
        moderator = open_link(moderator_ctx, link(room, "moderator"))
        join(moderator, "Max")
        speaker = open_link(speaker_ctx, link(room, "speaker"))
        join(speaker, "Sue")
        speaker.wait_for_function(
            "() => document.getElementById('room-app').dataset.live === 'open'"
        )
        moderator.locator("#participants").get_by_text("Sue").wait_for(timeout=LIVE)
        moderator.get_by_role("button", name="End meeting for all").click()
        speaker.locator("#end-view").wait_for(state="visible", timeout=LIVE)
        assert speaker.locator("#end-reason").inner_text() == "A moderator ended the meeting."
        assert speaker.get_by_role("link", name="Join again").is_visible()
        screenshot(speaker, "end-ended-phone")
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
        page.goto(link(room, "speaker"))
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
        base = link(room, "moderator").split("?")[0]

        response = page.goto(base + "?secret=wrong")
        assert response.status == 403
        assert page.get_by_role("heading", name="This link no longer works").is_visible()
        screenshot(page, "error-link")

        # A regenerated link: the old one stops working.
        old = link(room, "speaker")
        client = api(platform)
        answer = client.put(
            f"{PUB}/rooms/{room['roomId']}/access", json={"regenerate": ["speaker"]}
        )
        assert answer.status_code == 200, answer.text
        assert page.goto(old).status == 403

        # A closed room.
        client.put(f"{PUB}/rooms/{room['roomId']}/status", json={"status": "closed"})
        response = page.goto(link(room, "moderator"))
        assert response.status == 409
        assert page.get_by_role("heading", name="This room is closed").is_visible()
        screenshot(page, "error-closed")

        # A deleted room.
        assert client.delete(f"{PUB}/rooms/{room['roomId']}").status_code in (200, 202)
        response = page.goto(link(room, "moderator"))
        assert response.status == 404
        assert page.get_by_role("heading", name="This room no longer exists").is_visible()

        # No secret: the room's user link, for signed-in users: sign in first.
        page.goto(base)
        assert page.url.startswith(f"{platform.base}/login?next=")
        # A bad room id: an HTML page, never JSON.
        response = page.goto(f"{platform.base}/room/bad%20id?secret=x")
        assert response.status == 404
        assert "text/html" in response.headers["content-type"]
        # A page that does not exist: HTML for a browser, while the API keeps JSON.
        response = page.goto(f"{platform.base}/no/such/page")
        assert response.status == 404 and "text/html" in response.headers["content-type"]
        assert page.get_by_role("heading", name="Not found").is_visible()
        api_404 = httpx.get(f"{platform.base}{PUB}/no-such-route", headers={"Accept": "text/html"})
        assert api_404.status_code == 404 and api_404.headers["content-type"] == "application/json"
    finally:
        context.close()


def test_secret_never_in_logs(platform: Platform) -> None:
    room = make_room(platform, "Quiet")
    secret = link(room, "moderator").split("secret=")[1]
    assert httpx.get(link(room, "moderator")).status_code == 200
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
        screenshot(page, "docs")
        page.goto(f"{platform.base}/redoc")
        page.locator(".api-info h1").wait_for(timeout=WITHIN * 2)
        assert "meetplane" in page.locator(".api-info h1").inner_text()
        assert outside == []
    finally:
        context.close()


def test_moderator_records_and_the_recording_plays(platform: Platform, chromium: Any) -> None:
    room = make_room(platform, "Recorded talk")
    context = chromium.new_context(viewport=DESKTOP)
    try:
        page = open_link(context, link(room, "moderator"))
        join(page, "Rita")
        start = page.get_by_role("button", name="Start recording")
        badge = page.locator("#recording-badge")
        # The recordings service may not know the meeting yet: the page says so; try again.
        for _ in range(20):
            start.click()
            try:
                badge.wait_for(state="visible", timeout=1_000)
                break
            except Exception:
                assert (
                    page.locator("#meeting-error")
                    .inner_text()
                    .startswith("Could not start recording")
                )
        assert badge.is_visible()
        # Record a couple of seconds (of the page's own camera playing), then stop.
        page.evaluate(
            "() => { window.recordFrom = document.getElementById('self-video').currentTime; }"
        )
        page.wait_for_function(
            "() => document.getElementById('self-video').currentTime - window.recordFrom > 2.5",
            timeout=WITHIN,
        )
        page.get_by_role("button", name="Stop recording").click()
        badge.wait_for(state="hidden", timeout=WITHIN)
        page.get_by_role("button", name="Leave").click()

        # The room's recordings page (the recording link) lists and plays it.
        wait_complete(platform, room["roomId"])  # finalised in S3
        recording_url = link(room, "recording")
        viewer = open_link(context, recording_url)
        assert "secret" not in viewer.url
        video = viewer.locator("li.recording video")
        video.first.evaluate("v => { v.muted = true; return v.play(); }")
        # Playing: the position moves.
        viewer.wait_for_function(
            "() => { const v = document.querySelector('li.recording video');"
            " return v.currentTime > 1 && !v.error; }",
            timeout=WITHIN * 2,
        )
        screenshot(viewer, "recordings-desktop")
        # A share link opens the shared recording page, which plays it too.
        viewer.get_by_role("button", name="Copy share link").click()
        share = viewer.locator("#recordings-message")
        share.get_by_text("Share link:").wait_for(timeout=WITHIN)
        shared = open_link(context, share.get_attribute("data-url"))
        shared.locator("#shared-video").evaluate("v => { v.muted = true; return v.play(); }")
        shared.wait_for_function(
            "() => { const v = document.getElementById('shared-video');"
            " return v.currentTime > 0 && !v.error; }",
            timeout=WITHIN * 2,
        )
        screenshot(shared, "shared-recording")

        # The console: the recording is listed; a selection downloads as one ZIP (streamed
        # from the API), and a share link is made.
        admin = context.browser.new_context(viewport=DESKTOP, accept_downloads=True)
        console = admin.new_page()
        sign_in(platform, console)
        console.goto(f"{platform.base}/recordings?roomId={room['roomId']}")
        console.locator("input[name=recordingIds]").first.check()
        with console.expect_download() as download:
            console.get_by_role("button", name="Download selected (ZIP)").click()
        archive = zipfile.ZipFile(download.value.path())
        assert [n for n in archive.namelist() if n.endswith(".mp4")]
        console.get_by_role("button", name="Share link").first.click()
        url = console.get_by_test_id("share-url").inner_text()
        assert f"/recording/{recording_id_of(url)}?recordingSecret=" in url
        admin.close()
    finally:
        context.close()


def wait_complete(platform: Platform, room_id: str, timeout: float = 30.0) -> None:
    """Until the room's newest recording is complete (the API says so)."""
    with api(platform) as client:

        def complete() -> bool:
            page = client.get(f"{PUB}/recordings", params={"roomId": room_id}).json()
            return bool(page["recordings"]) and page["recordings"][0]["status"] == "complete"

        wait_until(complete, timeout, 0.2, message=f"recording of {room_id} not complete")


def recording_id_of(url: str) -> str:
    return url.split("/recording/")[1].split("?")[0]


def sign_in(platform: Platform, page: Any, wrong_first: bool = False) -> None:
    password = (platform.data_dir / "admin-password").read_text().strip()
    page.goto(f"{platform.base}/overview")
    assert page.url.startswith(f"{platform.base}/login")
    page.get_by_label("User name").fill("admin")
    if wrong_first:  # once only: failed sign-ins are rate-limited per user
        screenshot(page, "login")
        page.get_by_label("Password").fill("wrong password")
        page.get_by_role("button", name="Sign in").click()
        assert page.get_by_test_id("login-error").inner_text() == "Wrong user name or password."
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{platform.base}/overview")


def test_console_rooms(platform: Platform, chromium: Any) -> None:
    context = chromium.new_context(viewport=DESKTOP)
    try:
        page = context.new_page()
        page.on("dialog", lambda dialog: dialog.accept())
        sign_in(platform, page, wrong_first=True)
        assert page.get_by_role("heading", name="Overview").is_visible()
        cookies = {c["name"]: c for c in context.cookies()}
        assert cookies["mp_session"]["httpOnly"] and cookies["mp_session"]["sameSite"] == "Strict"
        screenshot(page, "overview")

        # Create a room with a config.
        page.get_by_role("link", name="New room").first.click()
        page.get_by_label("Name", exact=True).fill("Board meeting")
        page.get_by_label("Chat", exact=True).uncheck()
        page.get_by_label("Layout").select_option("speaker")
        screenshot(page, "room-new")
        page.get_by_role("button", name="Create room").click()
        page.get_by_test_id("flash").get_by_text("Room created.").wait_for()
        room_id = page.url.rsplit("/", 1)[1].split("?")[0]
        with api(platform) as client:
            created = client.get(f"{PUB}/rooms/{room_id}", params={"extraFields": "config"}).json()
        assert created["roomName"] == "Board meeting"
        assert created["config"]["chat"]["enabled"] is False
        assert created["config"]["recording"]["layout"] == "speaker"
        speaker_link = page.get_by_test_id("link-speaker").inner_text()
        assert speaker_link == link(created, "speaker")
        # "Copy" puts the link on the clipboard, as the admin would pass it on.
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=platform.base)
        page.get_by_role("button", name="Copy the speaker link").click()
        assert page.evaluate("navigator.clipboard.readText()") == speaker_link
        # The history shows the room's events.
        assert "Room created" in page.get_by_test_id("history").inner_text()

        # Someone joins with the speaker link: the room page shows them within 2 s.
        page.wait_for_function("() => document.body.dataset.live === 'open'")
        guest_ctx = chromium.new_context(viewport=PHONE)
        guest = open_link(guest_ctx, speaker_link)
        join(guest, "Gia")
        page.get_by_test_id("live-participants").get_by_text("Gia").wait_for(timeout=LIVE)
        screenshot(page, "room-detail")
        page.get_by_role("button", name="Remove Gia").click()
        page.get_by_test_id("flash").get_by_text("Participant removed").wait_for()
        guest.locator("#end-view").wait_for(state="visible", timeout=LIVE)
        guest_ctx.close()
        # A room's settings cannot change during a meeting: end it first.
        page.get_by_role("button", name="End meeting").click()
        page.get_by_test_id("flash").get_by_text("Meeting ended.").wait_for()
        assert page.get_by_test_id("no-meeting").is_visible()

        # Members: a guest with a personal link.
        page.get_by_label("Member", exact=True).select_option("guest")
        page.get_by_label("User name or guest name").fill("Greta")
        page.get_by_role("button", name="Add member").click()
        page.get_by_test_id("flash").get_by_text("Member added.").wait_for()
        assert "Greta" in page.get_by_test_id("members").inner_text()
        page.get_by_role("button", name="Remove member Greta").click()
        page.get_by_test_id("flash").get_by_text("Member removed.").wait_for()

        # Disable the speaker link: it now shows its own page.
        page.get_by_role("checkbox", name="Speaker link").uncheck()
        page.get_by_role("button", name="Save links").click()
        page.get_by_test_id("flash").get_by_text("Links updated.").wait_for()
        probe = context.new_page()
        assert probe.goto(speaker_link).status == 403
        assert probe.get_by_role("heading", name="This link no longer works").is_visible()
        probe.close()

        # Edit it.
        page.get_by_role("link", name="Edit").click()
        page.get_by_label("Name", exact=True).fill("Board meeting (Q3)")
        page.get_by_label("Chat", exact=True).check()
        screenshot(page, "room-edit")
        page.get_by_role("button", name="Save").click()
        page.get_by_test_id("flash").get_by_text("Room updated.").wait_for()
        assert page.get_by_role("heading", name="Board meeting (Q3)").is_visible()

        # Close it: its link now shows the closed page.
        page.get_by_role("button", name="Close room").click()
        page.get_by_test_id("flash").get_by_text("Room closed.").wait_for()

        # The list finds it by name; bulk delete three rooms through the checkboxes, one of
        # them with a live meeting.
        others = [make_room(platform, f"Bulk {n}")["roomId"] for n in range(2)]
        busy = make_room(platform, "Busy")
        with api(platform) as client:
            secret = link(busy, "moderator").split("secret=")[1]
            joined = client.post(
                f"{PUB}/rooms/{busy['roomId']}/join",
                json={"secret": secret, "participantName": "Bea"},
            )
            assert joined.status_code == 200, joined.text
        page.goto(f"{platform.base}/rooms")
        screenshot(page, "rooms")
        page.get_by_label("Name").fill("board")
        page.get_by_role("button", name="Filter").click()
        page.wait_for_url("**roomName=board**")
        rows = page.locator("#rooms-list tbody tr")
        assert rows.count() == 1 and "Board meeting (Q3)" in rows.first.inner_text()
        page.goto(f"{platform.base}/rooms")
        for room in [room_id, *others, busy["roomId"]]:
            page.locator(f"input[name=roomIds][value='{room}']").check()
        page.get_by_role("button", name="Delete selected").click()
        results = page.get_by_test_id("results")
        results.wait_for()
        for room in [room_id, *others]:
            assert "The room was deleted." in results.locator(f"li[data-id='{room}']").inner_text()
        # A refusal is explained in words, with the way out.
        refused = results.locator(f"li[data-id='{busy['roomId']}']").inner_text()
        assert "Not deleted: the room has a live meeting" in refused
        screenshot(page, "rooms-bulk-result")
        page.goto(f"{platform.base}/rooms")
        page.locator(f"input[name=roomIds][value='{busy['roomId']}']").check()
        page.get_by_label("If a meeting is live").select_option("force")
        page.get_by_role("button", name="Delete selected").click()
        outcome = page.get_by_test_id("results").locator(f"li[data-id='{busy['roomId']}']")
        assert "The live meeting was ended and the room deleted." in outcome.inner_text()
        with api(platform) as client:
            for room in [room_id, *others, busy["roomId"]]:
                assert client.get(f"{PUB}/rooms/{room}").status_code == 404

        # The other console pages render for an admin.
        for path, heading in (
            ("/recordings", "Recordings"),
            ("/users", "Users"),
            ("/profile", "Your profile"),
            ("/config", "Settings"),
        ):
            page.goto(platform.base + path)
            assert page.get_by_role("heading", name=heading, exact=True).is_visible(), path
            screenshot(page, path.strip("/"))
        # Bad input is an HTML page, not JSON.
        response = page.goto(f"{platform.base}/rooms?sort=nonsense")
        assert response.status == 400 and "text/html" in response.headers["content-type"]
        response = page.goto(f"{platform.base}/rooms/no_such_room")
        assert response.status == 404 and "text/html" in response.headers["content-type"]
    finally:
        context.close()


def test_console_forms_need_csrf(platform: Platform) -> None:
    with httpx.Client(base_url=platform.base) as client:
        page = client.get("/login")
        assert page.status_code == 200
        password = (platform.data_dir / "admin-password").read_text().strip()
        # No CSRF token: refused with an HTML page.
        refused = client.post("/login", data={"userId": "admin", "password": password})
        assert refused.status_code == 403
        assert "text/html" in refused.headers["content-type"]
        token = client.cookies["mp_csrf"]
        signed = client.post(
            "/login", data={"userId": "admin", "password": password, "csrf": token}
        )
        assert signed.status_code == 303
        assert client.post("/rooms/new", data={"roomName": "x"}).status_code == 403


def test_every_page_is_accessible_on_desktop_and_phone(platform: Platform, chromium: Any) -> None:
    """axe-core finds no serious or critical violation on any page, at both sizes."""
    room = make_room(platform, "Accessible")
    problems: list[str] = []
    for size, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        context = chromium.new_context(viewport=viewport, bypass_csp=True)
        page = context.new_page()
        page.on("dialog", lambda dialog: dialog.accept())

        def check(view: str, page: Any = page, size: str = size) -> None:
            problems.extend(f"{view} ({size}): {v}" for v in serious_violations(page))

        page.goto(link(room, "moderator"))
        check("join")
        page.get_by_label("Your name").fill(f"Ada {size}")
        page.get_by_role("button", name="Continue").click()
        page.locator("#device-view").wait_for(state="visible")
        check("device")
        page.get_by_role("button", name="Join meeting").click()
        page.locator("#participants li").first.wait_for(timeout=WITHIN)
        check("meeting")
        page.get_by_role("button", name="Leave").click()
        page.locator("#end-view").wait_for(state="visible")
        check("end")
        page.goto(room["access"]["anonymous"]["recording"]["url"])
        check("room recordings")
        page.goto(link(room, "moderator").split("?")[0] + "?secret=wrong")
        check("error")
        sign_in(platform, page)
        for path in (
            "/overview",
            "/rooms",
            "/rooms/new",
            f"/rooms/{room['roomId']}",
            f"/rooms/{room['roomId']}/edit",
            "/recordings",
            "/users",
            "/profile",
            "/config",
        ):
            page.goto(platform.base + path)
            check(path)
            if size == "phone":
                name = {
                    "/rooms/new": "room-new",
                    f"/rooms/{room['roomId']}": "room-detail",
                    f"/rooms/{room['roomId']}/edit": "room-edit",
                }.get(path, path.strip("/"))
                screenshot(page, f"{name}-phone")
        context.close()
    assert not problems, "\n".join(problems)


def test_signed_in_user_joins_with_the_user_link(platform: Platform, chromium: Any) -> None:
    room = make_room(platform, "Team room")
    user_link = room["access"]["user"]["url"]
    assert "secret" not in user_link
    context = chromium.new_context(viewport=DESKTOP)
    try:
        page = context.new_page()
        page.goto(user_link)  # not signed in: the sign-in page, then back to the room
        page.get_by_label("User name").fill("admin")
        page.get_by_label("Password").fill(
            (platform.data_dir / "admin-password").read_text().strip()
        )
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(user_link)
        assert page.get_by_test_id("role").inner_text() == "moderator"
        join(page, "The Admin")
        page.locator("#participants").get_by_text("The Admin (you)").wait_for(timeout=WITHIN)
        with api(platform) as client:
            meeting = client.get(f"{PUB}/meetings/{room['roomId']}").json()
        assert [p["name"] for p in meeting["participants"] if p["present"]] == ["The Admin"]
        page.get_by_role("button", name="Leave").click()
        page.locator("#end-view").wait_for(state="visible", timeout=WITHIN)
    finally:
        context.close()


def test_console_users_and_api_keys(platform: Platform, chromium: Any) -> None:
    context = chromium.new_context(viewport=DESKTOP)
    try:
        page = context.new_page()
        page.on("dialog", lambda dialog: dialog.accept())
        sign_in(platform, page)
        page.goto(f"{platform.base}/users")
        page.get_by_label("User name").fill("ursula")
        page.get_by_label("Display name").fill("Ursula")
        page.get_by_label("First password").fill("a first password 1")
        page.get_by_role("button", name="Create user").click()
        page.get_by_test_id("flash").get_by_text("User created.").wait_for()
        page.get_by_label("Role of ursula", exact=True).select_option("room_manager")
        page.get_by_role("button", name="Change role of ursula").click()
        page.get_by_test_id("flash").get_by_text("Role changed.").wait_for()
        page.get_by_label("New password for ursula").fill("a second password 2")
        page.get_by_role("button", name="Reset password of ursula").click()
        page.get_by_test_id("flash").get_by_text("Password reset").wait_for()
        with api(platform) as client:
            user = client.get(f"{PUB}/users/ursula").json()
        assert user["role"] == "room_manager"
        # Too short a password: the API's message on an HTML page.
        page.get_by_label("New password for ursula").fill("x")
        page.get_by_role("button", name="Reset password of ursula").click()
        assert page.locator(".flash.error").is_visible()

        # Ursula signs in with the password an admin set: she must choose her own first.
        other = chromium.new_context(viewport=PHONE)
        ursula = other.new_page()
        ursula.goto(f"{platform.base}/login")
        ursula.get_by_label("User name").fill("ursula")
        ursula.get_by_label("Password").fill("a second password 2")
        ursula.get_by_role("button", name="Sign in").click()
        ursula.wait_for_url("**/profile**")
        if "must=1" in ursula.url:
            assert ursula.get_by_text("Please choose a new password").is_visible()
        ursula.get_by_label("Current password").fill("a second password 2")
        ursula.get_by_label("New password").fill("ursula's own password 3")
        ursula.get_by_role("button", name="Change password").click()
        ursula.get_by_test_id("flash").get_by_text("Password changed.").wait_for()
        # A room manager sees no Users or Settings.
        assert ursula.get_by_role("link", name="Users").count() == 0
        assert ursula.goto(f"{platform.base}/users").status == 403
        other.close()

        # API keys: created (shown once), listed, deleted.
        page.goto(f"{platform.base}/config")
        page.get_by_role("button", name="Create an API key").click()
        key = page.get_by_test_id("new-key").locator("code").inner_text()
        with httpx.Client(base_url=platform.base, headers={"X-API-KEY": key}) as client:
            assert client.get(f"{PUB}/rooms").status_code == 200
        page.goto(f"{platform.base}/config")
        page.get_by_role("button", name="Delete API key").first.click()
        page.get_by_test_id("flash").get_by_text("API key deleted").wait_for()

        # Webhooks: one more, for two events.
        page.get_by_label("Webhook URL").fill("https://1.1.1.1/meetplane-hook")
        page.get_by_label("meetingStarted").check()
        page.get_by_label("meetingEnded").check()
        page.get_by_role("button", name="Add webhook").click()
        page.get_by_test_id("flash").get_by_text("Webhook added.").wait_for()
        with api(platform) as client:
            hooks = client.get(f"{PUB}/webhooks").json()["webhooks"]
        assert [(h["url"], h["events"]) for h in hooks] == [
            ("https://1.1.1.1/meetplane-hook", ["meetingStarted", "meetingEnded"])
        ]
        # An internal address is refused, in words.
        page.get_by_label("Webhook URL").fill("http://169.254.169.254/latest")
        page.get_by_role("button", name="Add webhook").click()
        assert page.locator(".flash.error").is_visible()
        page.get_by_role("button", name="Delete webhook https://1.1.1.1/meetplane-hook").click()
        page.get_by_test_id("flash").get_by_text("Webhook deleted.").wait_for()
        screenshot(page, "config")
    finally:
        context.close()
