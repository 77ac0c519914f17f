"""No built-in secrets: generated per data dir (0600), refused when public, never printed."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from services.runtime import launcher
from services.runtime.secrets import (
    DEV_LIVEKIT_API_SECRET,
    DevSecretsRefused,
    check_dev_secrets,
    data_dir_secret,
)
from services.runtime.settings import RuntimeSettings


@pytest.fixture
def no_secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("MEETPLANE_"):
            monkeypatch.delenv(name)


@pytest.mark.usefixtures("no_secret_env")
@pytest.mark.parametrize(
    "make", [launcher.api_key, launcher.storage_secret, launcher.livekit_secret]
)
def test_up_generates_each_secret_once_into_the_data_dir_readable_by_owner_only(
    tmp_path: Path, make: object
) -> None:
    assert callable(make)
    first = make(tmp_path)
    files = [p for p in tmp_path.iterdir() if p.read_text().strip() == first]
    assert len(files) == 1
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    assert len(first) >= 32
    assert first != DEV_LIVEKIT_API_SECRET
    assert make(tmp_path) == first  # the same on the next start


@pytest.mark.usefixtures("no_secret_env")
def test_up_gives_services_a_generated_livekit_secret_not_the_built_in_one(tmp_path: Path) -> None:
    platform = launcher.Platform(RuntimeSettings(data_dir=tmp_path))
    env = platform.child_env()
    assert env["MEETPLANE_LIVEKIT_API_SECRET"] != DEV_LIVEKIT_API_SECRET
    assert env["MEETPLANE_LIVEKIT_API_SECRET"] == (tmp_path / "livekit-api-secret").read_text()


def test_two_processes_generating_together_agree_on_one_secret(tmp_path: Path) -> None:
    values = {data_dir_secret(tmp_path, "shared") for _ in range(3)}
    assert len(values) == 1


@pytest.mark.parametrize(
    "env",
    [
        {"MEETPLANE_LIVEKIT_API_SECRET": DEV_LIVEKIT_API_SECRET},
        {},  # unset: the settings would fall back to the built-in secret
        {"MEETPLANE_LIVEKIT_API_SECRET": "x" * 40, "MEETPLANE_API_KEY": "dev-only-api-key"},
        {"MEETPLANE_LIVEKIT_API_SECRET": "x" * 40, "MEETPLANE_AUTH_SIGNING_KEY": "change-me-key"},
    ],
)
def test_serve_refuses_a_publicly_known_secret(env: dict[str, str]) -> None:
    with pytest.raises(DevSecretsRefused) as refused:
        check_dev_secrets(env, "gateway")
    for value in env.values():
        assert value not in str(refused.value)


def test_a_service_without_livekit_needs_no_livekit_secret() -> None:
    check_dev_secrets({}, "rooms")


def test_allowing_development_secrets_logs_a_warning_naming_the_variable() -> None:
    env = {
        "MEETPLANE_LIVEKIT_API_SECRET": DEV_LIVEKIT_API_SECRET,
        "MEETPLANE_ALLOW_DEV_SECRETS": "1",
    }
    with capture_logs() as logs:
        check_dev_secrets(env, "meetings")
    [warning] = [entry for entry in logs if entry["log_level"] == "warning"]
    assert warning["variables"] == ["MEETPLANE_LIVEKIT_API_SECRET"]
    assert DEV_LIVEKIT_API_SECRET not in repr(warning)


def test_meetplane_serve_exits_with_one_line_on_a_development_secret(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEETPLANE_")}
    env.update(
        MEETPLANE_DATA_DIR=str(tmp_path), MEETPLANE_LIVEKIT_API_SECRET=DEV_LIVEKIT_API_SECRET
    )
    done = subprocess.run(
        [sys.executable, "-m", "services.runtime.cli", "serve", "meetings"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "MEETPLANE_LIVEKIT_API_SECRET" in done.stderr
    assert "MEETPLANE_ALLOW_DEV_SECRETS" in done.stderr
    assert DEV_LIVEKIT_API_SECRET not in done.stderr + done.stdout


@pytest.mark.usefixtures("no_secret_env")
def test_up_says_where_the_api_key_is_never_the_key(tmp_path: Path) -> None:
    key = launcher.api_key(tmp_path)
    line = launcher._key_line(tmp_path)
    assert key not in line
    assert str(tmp_path / "api-key") in line


def test_the_readme_shows_the_nats_permission_table() -> None:
    from services.runtime.nats_auth import permission_table

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert permission_table() in readme, "regenerate README's table from permission_table()"
