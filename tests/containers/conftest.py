"""The platform as containers: deploy/compose.yaml from this checkout's images."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.compose import ComposePlatform
from tests.support.containers import engine_available, image


@pytest.fixture(scope="module")
def compose_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComposePlatform]:
    if not engine_available():
        pytest.skip("no container engine answers (scripts/podman-setup start sets one up)")
    for name in ("meetplane", "nats", "postgres", "seaweedfs"):
        if image(name) is None:
            pytest.skip(f"image {name} is not built here: run scripts/images")
    root: Path = tmp_path_factory.mktemp("compose")
    platform = ComposePlatform(root)
    try:
        platform.up()
        platform.wait_ready()
        yield platform
    finally:
        platform.down()
