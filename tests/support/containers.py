"""Test infrastructure as containers, through testcontainers and a Docker-compatible engine.

The engine is podman's `podman system service` socket (`scripts/podman-setup start`
exports `DOCKER_HOST`); the images are this checkout's own builds (`scripts/images`
records their tags in `.images.env`), since no registry is reachable. When no engine
answers the fixtures use local binaries instead, unless `MEETPLANE_TEST_CONTAINERS=required`
(what `scripts/test` sets once it has an engine): then a missing engine or image fails.
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
from functools import cache
from pathlib import Path
from typing import Any

from tests.support.services import wait_until

REPO = Path(__file__).resolve().parents[2]
TAGS_FILE = REPO / ".images.env"
LABEL = "meetplane.test"  # on every test container: `scripts/test` removes leftovers


def _required() -> bool:
    return os.environ.get("MEETPLANE_TEST_CONTAINERS") == "required"


@cache
def engine_available() -> bool:
    """Whether a Docker-compatible engine answers (testcontainers needs one)."""
    if os.environ.get("MEETPLANE_TEST_NO_DOCKER"):
        return False
    import docker

    try:  # podman's API can be slow to answer on a busy machine: a few tries
        wait_until(lambda: docker.from_env(timeout=30).ping(), 60, 1.0, ignore=(Exception,))
    except TimeoutError as exc:
        if _required():
            raise RuntimeError(
                f"MEETPLANE_TEST_CONTAINERS=required; no engine answers: {exc}"
            ) from exc
        return False
    # Ryuk (the reaper container) cannot be pulled here; fixtures stop their containers.
    os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
    # The engine runs on this host: reach containers by their published ports on
    # IPv4 loopback (testcontainers would guess "inside a container" in a sandbox, and
    # "localhost" may try ::1 first).
    os.environ.setdefault("TESTCONTAINERS_CONNECTION_MODE", "docker_host")
    os.environ.setdefault("TESTCONTAINERS_HOST_OVERRIDE", "127.0.0.1")
    return True


def images() -> dict[str, str]:
    """Image name -> tag: `MEETPLANE_IMAGE_<NAME>` variables, else `.images.env`."""
    found: dict[str, str] = {}
    if TAGS_FILE.exists():
        for line in TAGS_FILE.read_text().splitlines():
            if line.startswith("MEETPLANE_IMAGE_") and "=" in line:
                key, value = line.split("=", 1)
                found[key] = value.strip()
    found.update({k: v for k, v in os.environ.items() if k.startswith("MEETPLANE_IMAGE_")})
    return {
        k.removeprefix("MEETPLANE_IMAGE_").lower().replace("_", "-"): v for k, v in found.items()
    }


def image(name: str) -> str | None:
    """The tag of a locally built image, if it is in the engine's store."""
    tag = images().get(name)
    if tag is not None:
        import docker

        try:
            docker.from_env(timeout=60).images.get(tag)
            return tag
        except docker.errors.ImageNotFound:
            pass
    if _required():
        raise RuntimeError(f"image {name} ({tag or 'no tag'}) is not built: run scripts/images")
    return None


def use_containers(name: str) -> str | None:
    """The image to run `name` from, or None to use the local binary."""
    return image(name) if engine_available() else None


def labelled(container: Any) -> Any:
    """Mark a testcontainers container as this checkout's (`scripts/test` removes leftovers)."""
    return container.with_kwargs(labels={LABEL: os.environ.get("MEETPLANE_TEST_OWNER", "1")})


class PostgresContainerHandle:
    """One PostgreSQL container for the whole test session (schemas isolate tests)."""

    def __init__(self, tag: str) -> None:
        from testcontainers.postgres import PostgresContainer

        container = PostgresContainer(
            tag, username="postgres", password="meetplane-test", dbname="test", driver=None
        )
        # Throwaway data: no fsync; room for the replica tests' pools.
        container.with_command("-c fsync=off -c synchronous_commit=off -c max_connections=400")
        self.container = labelled(container)
        self.container.start()
        self.dsn: str = self.container.get_connection_url()

    def stop(self) -> None:
        self.container.stop()


@cache
def session_postgres() -> str | None:
    """The DSN of the session's PostgreSQL container (started on first use), or None."""
    tag = use_containers("postgres")
    if tag is None:
        return None
    handle = PostgresContainerHandle(tag)
    atexit.register(handle.stop)
    return handle.dsn


class SharedNats:
    """One NATS container for the session, with a fresh account per test.

    Accounts isolate subjects and JetStream completely (each has its own streams,
    consumers and buckets), so a test sees a server of its own without paying for a
    container start each time.
    """

    ACCOUNTS = 500

    def __init__(self, tag: str) -> None:
        import tempfile

        from testcontainers.core.container import DockerContainer
        from testcontainers.core.waiting_utils import wait_for_logs

        self.password = secrets.token_hex(8)
        self.folder = Path(tempfile.mkdtemp(prefix="meetplane-nats-"))
        self.folder.chmod(0o755)
        accounts = "\n".join(
            f"  t{i}: {{ jetstream: enabled, users: [{{user: t{i}, password: {self.password}}}] }}"
            for i in range(self.ACCOUNTS)
        )
        conf = self.folder / "nats.conf"
        conf.write_text(
            f"port: 4222\njetstream {{ store_dir: /tmp/nats }}\naccounts {{\n{accounts}\n}}\n"
        )
        conf.chmod(0o644)
        container = (
            DockerContainer(tag)
            .with_volume_mapping(str(self.folder), "/etc/meetplane-nats", "ro")
            .with_command(["--config", "/etc/meetplane-nats/nats.conf"])
            .with_exposed_ports(4222)
        )
        self.container = labelled(container)
        self.container.start()
        wait_for_logs(self.container, "Server is ready", timeout=120, interval=0.2)
        host = self.container.get_container_host_ip()
        self.address = f"{host}:{self.container.get_exposed_port(4222)}"
        self.used = 0

    def next_url(self) -> str | None:
        """A URL into an account no test has used, or None when all are taken."""
        if self.used >= self.ACCOUNTS:
            return None
        account = f"t{self.used}"
        self.used += 1
        return f"nats://{account}:{self.password}@{self.address}"

    def stop(self) -> None:
        self.container.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


@cache
def session_nats() -> SharedNats | None:
    """The session's NATS container (started on first use), or None without an engine."""
    tag = use_containers("nats")
    if tag is None:
        return None
    shared = SharedNats(tag)
    atexit.register(shared.stop)
    return shared


class S3Container:
    """A SeaweedFS S3 server in a container, with the credentials given."""

    def __init__(self, tag: str, access_key: str, secret_key: str) -> None:
        from testcontainers.core.container import DockerContainer

        container = (
            DockerContainer(tag)
            .with_env("AWS_ACCESS_KEY_ID", access_key)
            .with_env("AWS_SECRET_ACCESS_KEY", secret_key)
            .with_exposed_ports(8333)
        )
        self.container = labelled(container)
        self.container.start()
        host = self.container.get_container_host_ip()
        self.endpoint = f"{host}:{self.container.get_exposed_port(8333)}"
        self.access_key = access_key
        self.secret_key = secret_key

    def wait_ready(self, timeout: float = 90.0) -> None:
        """Until an authenticated ListBuckets succeeds."""
        import urllib3
        from minio import Minio

        client = Minio(
            self.endpoint,
            self.access_key,
            self.secret_key,
            secure=False,
            http_client=urllib3.PoolManager(retries=False, timeout=2.0),
        )
        wait_until(
            lambda: client.list_buckets() is not None,
            timeout,
            0.2,
            ignore=(Exception,),  # connection refused, S3 errors while the server starts
            message=lambda: f"S3 container not ready\n{self.container.get_logs()}",
        )

    def stop(self) -> None:
        self.container.stop()
