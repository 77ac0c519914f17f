"""Benchmark: download throughput of a 200 MB recording through /media vs straight from S3.

Same run, same client, same object: the gateway path (HTTP → gateway → NATS for
the location → streamed from S3 and relayed) against a direct GET of the
presigned S3 URL.  Prints MB/s for both and the ratio (best of N runs each).

    python bench/media.py [--mb 200] [--runs 3]
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from bench._harness import Platform, free_port
from services.runtime.seaweedfs import SeaweedFS


def download(url: str, headers: dict[str, str] | None = None) -> tuple[int, float]:
    started = time.perf_counter()
    received = 0
    with (
        httpx.Client(timeout=120) as client,
        client.stream("GET", url, headers=headers) as response,
    ):
        response.raise_for_status()
        for chunk in response.iter_bytes(1024 * 1024):
            received += len(chunk)
    return received, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    size = args.mb * 1024 * 1024

    root = Path(tempfile.mkdtemp(prefix="meetplane-bench-media-"))
    secret = secrets.token_urlsafe(16)
    s3 = SeaweedFS(root / "s3", free_port(), "bench", secret)
    s3.start()
    s3.wait_ready()
    platform = Platform(
        root,
        ["rooms", "meetings", "gateway"],
        {
            "MEETPLANE_READY_SERVICES": "rooms,meetings,recordings",
            "MEETPLANE_STORAGE_ENDPOINT": s3.endpoint,
            "MEETPLANE_STORAGE_ACCESS_KEY": "bench",
            "MEETPLANE_STORAGE_SECRET_KEY": secret,
        },
    )
    platform.add([sys.executable, "bench/_sized_recordings.py", str(size)], "rec.log")
    base = f"{platform.base}/api/v1"
    admin = {"X-API-KEY": "bench"}
    try:
        platform.wait_ready()
        room = httpx.post(f"{base}/rooms", json={"roomName": "media"}, headers=admin).json()
        secret_link = room["moderatorUrl"].split("secret=")[1]
        httpx.post(
            f"{base}/rooms/{room['roomId']}/join",
            json={"secret": secret_link, "participantName": "Bench"},
        ).raise_for_status()
        deadline = time.monotonic() + 120
        while True:
            started = httpx.post(
                f"{base}/recordings", json={"roomId": room["roomId"]}, headers=admin, timeout=300
            )
            if started.status_code == 201 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        started.raise_for_status()
        recording_id = started.json()["recordingId"]
        httpx.post(f"{base}/recordings/{recording_id}/stop", headers=admin).raise_for_status()
        while (
            httpx.get(f"{base}/recordings/{recording_id}", headers=admin).json()["status"]
            != "complete"
        ):
            time.sleep(0.2)
        from services.recordings.storage import ObjectStorage, StorageSettings

        storage = ObjectStorage(
            StorageSettings(endpoint=s3.endpoint, access_key="bench", secret_key=secret)
        )
        key = f"recordings/{room['roomId']}/{recording_id}.mp4"
        direct_url = storage.presigned_get(key)
        gateway, direct = [], []
        for _ in range(args.runs):
            n, seconds = download(direct_url)
            assert n == size
            direct.append(n / seconds / 1e6)
            n, seconds = download(f"{base}/recordings/{recording_id}/media", admin)
            assert n == size
            gateway.append(n / seconds / 1e6)
    finally:
        platform.stop()
        s3.stop()
    print(f"meetplane bench/media.py: {args.mb} MB recording, best of {args.runs} runs")
    print(f"direct GET from S3 (presigned)     {max(direct):8.1f} MB/s")
    print(f"GET /api/v1/recordings/{{id}}/media  {max(gateway):8.1f} MB/s")
    print(f"ratio gateway/direct: {max(gateway) / max(direct):.2f}")


if __name__ == "__main__":
    main()
