"""Object storage on the `minio` SDK: any S3 (MinIO in production, SeaweedFS embedded).

Synchronous like the SDK; async callers use `asyncio.to_thread`.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import BinaryIO, cast

from minio import Minio
from minio.deleteobjects import DeleteObject
from minio.error import S3Error
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.runtime.logging import get_logger
from services.runtime.telemetry import external_call

log = get_logger("meetplane.storage")


class StorageSettings(BaseSettings):
    """`MEETPLANE_STORAGE_*`."""

    model_config = SettingsConfigDict(env_prefix="MEETPLANE_STORAGE_", extra="ignore")

    endpoint: str = "127.0.0.1:18333"
    access_key: str = "meetplane"
    secret_key: str = "meetplane-secret"  # noqa: S105 - development default, set in production
    bucket: str = "meetplane-recordings"
    secure: bool = False
    region: str = "us-east-1"
    part_size: int = 8 * 1024 * 1024


@dataclass(frozen=True)
class ObjectInfo:
    """What `stat` says about an object."""

    key: str
    size: int
    etag: str
    content_type: str


@dataclass(frozen=True)
class ListedObject:
    """One object of a listing; `last_modified_ms` is when its upload completed."""

    key: str
    size: int
    last_modified_ms: int


class ObjectNotFound(Exception):
    """No such object."""


class _ChunkReader(io.RawIOBase):
    """A file-like view of an iterator of chunks, for streamed multipart uploads."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, target: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._buffer:
            try:
                self._buffer = next(self._chunks)
            except StopIteration:
                return 0
        size = min(len(target), len(self._buffer))
        target[:size] = self._buffer[:size]
        self._buffer = self._buffer[size:]
        return size


def _missing(exc: Exception) -> bool:
    """A missing object is an answer, not a failure of S3."""
    return isinstance(exc, S3Error) and exc.code in ("NoSuchKey", "NoSuchObject", "NotFound")


class ObjectStorage:
    """One bucket of an S3 server."""

    def __init__(self, settings: StorageSettings) -> None:
        self.settings = settings
        self.bucket = settings.bucket
        self.client = Minio(
            settings.endpoint,
            access_key=settings.access_key,
            secret_key=settings.secret_key,
            secure=settings.secure,
            region=settings.region,
        )

    def ensure_bucket(self) -> None:
        """Create the bucket if missing (idempotent, safe when racing another replica)."""
        if self.client.bucket_exists(self.bucket):
            return
        try:
            self.client.make_bucket(self.bucket)
        except S3Error as exc:
            if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise

    def put_stream(self, key: str, chunks: Iterable[bytes], content_type: str) -> int:
        """Upload chunks of unknown total length as a multipart upload; returns the size."""
        with external_call("s3", "put_object"):
            result = self.client.put_object(
                self.bucket,
                key,
                cast(BinaryIO, _ChunkReader(chunks)),
                length=-1,
                part_size=self.settings.part_size,
                content_type=content_type,
            )
        info = self.stat(key)
        assert info is not None
        log.info("storage.put", key=key, size=info.size, etag=result.etag)
        return info.size

    def stat(self, key: str) -> ObjectInfo | None:
        """Size, etag and type, or None if missing."""
        try:
            with external_call("s3", "stat_object", _missing):
                stat = self.client.stat_object(self.bucket, key)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject", "NotFound"):
                return None
            raise
        return ObjectInfo(key, int(stat.size or 0), str(stat.etag), str(stat.content_type))

    def get_range(self, key: str, start: int, end_inclusive: int) -> Iterator[bytes]:
        """Stream bytes [start, end] in chunks with bounded memory."""
        try:
            with external_call("s3", "get_object", _missing):
                response = self.client.get_object(
                    self.bucket, key, offset=start, length=end_inclusive - start + 1
                )
        except S3Error as exc:
            raise ObjectNotFound(key) from exc
        try:
            yield from response.stream(256 * 1024)
        finally:
            response.close()
            response.release_conn()

    def list_prefix(self, prefix: str) -> Iterator[tuple[str, int]]:
        """(key, size) of every object under `prefix`."""
        for listed in self.list_objects(prefix):
            yield listed.key, listed.size

    def list_objects(self, prefix: str) -> Iterator[ListedObject]:
        """Key, size and last-modified time of every object under `prefix`."""
        for obj in self.client.list_objects(self.bucket, prefix=prefix, recursive=True):
            modified = obj.last_modified
            yield ListedObject(
                str(obj.object_name),
                int(obj.size or 0),
                int(modified.timestamp() * 1000) if modified else 0,
            )

    def delete(self, key: str) -> None:
        """Delete an object; a missing one is fine."""
        with external_call("s3", "remove_object"):
            self.client.remove_object(self.bucket, key)
        log.info("storage.deleted", key=key)

    def delete_many(self, keys: Iterable[str]) -> list[str]:
        """Delete objects; returns keys that failed."""
        with external_call("s3", "remove_objects"):
            errors = self.client.remove_objects(self.bucket, (DeleteObject(k) for k in keys))
            return [str(e.name) for e in errors]

    def presigned_get(self, key: str, expires: timedelta = timedelta(minutes=5)) -> str:
        """A time-limited GET URL for the object."""
        return str(self.client.presigned_get_object(self.bucket, key, expires=expires))
