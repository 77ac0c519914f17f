"""A real browser for the page tests: Playwright driving Debian's `chromium`.

Playwright's own browser download cannot work here, so the tests launch the
`chromium` binary of the distribution (scripts/test installs it when missing),
with a fake camera and microphone that need no permission prompt.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
FAKE_MEDIA = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]


def chromium_path() -> str:
    """The distribution's chromium binary (skip when it is not installed)."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get("CI"):
        pytest.fail("chromium is not installed: scripts/test installs it with apt")
    pytest.skip("chromium is not installed (scripts/test installs it with apt)")
    raise AssertionError  # unreachable


@contextmanager
def browser(args: list[str] | None = None) -> Iterator[Any]:
    """A headless chromium with a fake camera and microphone."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium_path(),
            headless=True,
            args=[*FAKE_MEDIA, "--no-sandbox", *(args or [])],
        )
        try:
            yield launched
        finally:
            launched.close()


def screenshot(page: Any, name: str) -> None:
    """Save the page as docs/screenshots/<name>.png (the README shows them)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


AXE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"  # axe-core, vendored


def serious_violations(page: Any) -> list[str]:
    """axe-core's serious and critical accessibility violations on the page.

    The page's context must be opened with `bypass_csp=True`: the pages' CSP lets no
    script in but their own, axe-core included.
    """
    page.add_script_tag(path=str(AXE))
    found: list[str] = page.evaluate(
        """async () => {
            const result = await axe.run(document, {resultTypes: ['violations']});
            return result.violations
                .filter(v => v.impact === 'serious' || v.impact === 'critical')
                .map(v => v.id + ': ' + v.nodes.map(n => n.target.join(' ')).join(', '));
        }"""
    )
    return found
