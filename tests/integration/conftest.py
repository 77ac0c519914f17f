"""Integration fixtures: one real S3 server (SeaweedFS `weed mini`, a container when an
engine answers) per session."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from services.recordings.storage import ObjectStorage, StorageSettings
from services.runtime.seaweedfs import SeaweedFS
from tests.support.containers import S3Container, use_containers
from tests.support.infra import free_port

S3_ACCESS = "meetplane-test"
S3_SECRET = "meetplane-test-secret"


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS | S3Container]:
    """One S3 server for the session: a SeaweedFS container, else the local `weed`."""
    tag = use_containers("seaweedfs")
    server: SeaweedFS | S3Container
    if tag is not None:
        server = S3Container(tag, S3_ACCESS, S3_SECRET)
    else:
        server = SeaweedFS(tmp_path_factory.mktemp("s3"), free_port(), S3_ACCESS, S3_SECRET)
        server.start()
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture
def storage_settings(seaweedfs: SeaweedFS | S3Container) -> StorageSettings:
    """A fresh bucket per test on the session's S3 server."""
    return StorageSettings(
        endpoint=seaweedfs.endpoint,
        access_key=S3_ACCESS,
        secret_key=S3_SECRET,
        bucket=f"t-{uuid.uuid4().hex[:12]}",
    )


@pytest.fixture
def storage(storage_settings: StorageSettings) -> ObjectStorage:
    store = ObjectStorage(storage_settings)
    store.ensure_bucket()
    return store
