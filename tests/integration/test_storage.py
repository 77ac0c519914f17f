"""The storage module against real S3 servers: SeaweedFS always, MinIO where its image is."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from services.recordings.storage import ObjectNotFound, ObjectStorage, StorageSettings
from services.runtime.seaweedfs import SeaweedFS
from tests.support.infra import docker_available, free_port

# The image the dev overlay runs (deploy/k8s/overlays/dev/minio.yaml).
MINIO_IMAGE = os.environ.get(
    "MEETPLANE_TEST_MINIO_IMAGE", "minio/minio:RELEASE.2024-10-13T13-34-11Z"
)


def image_present(tag: str) -> bool:
    """Whether the engine holds `tag` already (nothing is pulled)."""
    import docker

    try:
        docker.from_env(timeout=10).images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    return True


@pytest.fixture(params=["seaweedfs", "minio"])
def s3(request: pytest.FixtureRequest, storage: ObjectStorage) -> Iterator[ObjectStorage]:
    if request.param == "seaweedfs":
        yield storage
        return
    if not docker_available():
        pytest.skip("no container engine answers: the MinIO container cannot run here")
    if not image_present(MINIO_IMAGE):
        # An engine answers (podman), but MinIO cannot be had: no registry of container
        # images is reachable to pull it from, and neither PyPI nor Debian ships a MinIO
        # server binary to build an image with. S3 is covered by SeaweedFS meanwhile.
        pytest.skip(
            f"MinIO unavailable: {MINIO_IMAGE} is not in the engine's image store, no "
            "registry is reachable to pull it, and no MinIO server binary exists on PyPI "
            "or Debian to build it; the SeaweedFS runs cover S3"
        )
    from testcontainers.minio import MinioContainer

    with MinioContainer(MINIO_IMAGE) as minio:
        config = minio.get_config()
        settings = StorageSettings(
            endpoint=config["endpoint"],
            access_key=config["access_key"],
            secret_key=config["secret_key"],
            bucket="meetplane-test",
        )
        store = ObjectStorage(settings)
        store.ensure_bucket()
        yield store


def blocks(total: int, size: int = 1024 * 1024) -> Iterator[bytes]:
    for offset in range(0, total, size):
        yield bytes((offset // size + i) % 256 for i in range(min(size, total - offset)))


def test_bucket_creation_is_idempotent(s3: ObjectStorage) -> None:
    s3.ensure_bucket()
    s3.ensure_bucket()


def test_streamed_multipart_upload_of_unknown_length(s3: ObjectStorage) -> None:
    total = 20 * 1024 * 1024 + 123
    size = s3.put_stream("recordings/a/big.bin", blocks(total), "application/octet-stream")
    info = s3.stat("recordings/a/big.bin")
    assert size == total and info is not None and info.size == total


def test_ranged_reads(s3: ObjectStorage) -> None:
    data = os.urandom(1000)
    s3.put_stream("recordings/a/r.bin", [data], "application/octet-stream")
    assert b"".join(s3.get_range("recordings/a/r.bin", 0, 0)) == data[:1]
    assert b"".join(s3.get_range("recordings/a/r.bin", 999, 999)) == data[999:]
    assert b"".join(s3.get_range("recordings/a/r.bin", 100, 199)) == data[100:200]
    assert b"".join(s3.get_range("recordings/a/r.bin", 0, 999)) == data
    with pytest.raises(ObjectNotFound):
        b"".join(s3.get_range("recordings/a/missing", 0, 1))


def test_list_delete_and_presign(s3: ObjectStorage) -> None:
    for name in ("x", "y"):
        s3.put_stream(f"recordings/room/{name}.mp4", [b"abc"], "video/mp4")
    s3.put_stream("other/z", [b"abc"], "video/mp4")
    assert sorted(k for k, _ in s3.list_prefix("recordings/room/")) == [
        "recordings/room/x.mp4",
        "recordings/room/y.mp4",
    ]
    url = s3.presigned_get("recordings/room/x.mp4", timedelta(minutes=1))
    assert httpx.get(url).content == b"abc"
    s3.delete("recordings/room/x.mp4")
    s3.delete("recordings/room/x.mp4")  # missing is fine
    assert s3.stat("recordings/room/x.mp4") is None
    assert s3.delete_many(["recordings/room/y.mp4", "other/z"]) == []


def test_data_survives_a_server_restart(tmp_path: Path) -> None:
    server = SeaweedFS(tmp_path / "s3", free_port(), "restart-key", "restart-secret")
    server.start()
    try:
        server.wait_ready()
        settings = StorageSettings(
            endpoint=server.endpoint,
            access_key="restart-key",
            secret_key="restart-secret",
            bucket=f"r-{uuid.uuid4().hex[:8]}",
        )
        store = ObjectStorage(settings)
        store.ensure_bucket()
        store.put_stream("recordings/keep.bin", [b"kept"], "application/octet-stream")
        server.stop()
        server.start()
        server.wait_ready()
        assert b"".join(store.get_range("recordings/keep.bin", 0, 3)) == b"kept"
    finally:
        server.stop()
