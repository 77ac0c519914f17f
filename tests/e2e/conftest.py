"""The e2e platform: `meetplane up` with every service, started once per module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.platform import Platform


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    root: Path = tmp_path_factory.mktemp("platform")
    platform = Platform(root)
    try:
        platform.wait_ready()
        yield platform
    finally:
        platform.stop()
