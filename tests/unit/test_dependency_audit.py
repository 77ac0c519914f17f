"""scripts/audit.py: vulnerabilities fail the run; no advisory data is said, not faked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def fake_pip_audit(tmp_path: Path, report: dict[str, Any] | None, stderr: str = "") -> Path:
    """A stand-in pip-audit (the pinned version) answering with `report`."""
    venv = tmp_path / "audit-venv"
    (venv / "bin").mkdir(parents=True)
    body = json.dumps(report) if report is not None else ""
    script = venv / "bin" / "pip-audit"
    script.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = "--version" ]; then echo "pip-audit 2.10.1"; exit 0; fi\n'
        f"echo '{body}'\necho '{stderr}' >&2\nexit 1\n"
    )
    script.chmod(0o755)
    return venv


def audit(venv: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AUDIT_VENV": str(venv), "VENV": str(Path(sys.prefix))}
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "audit.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_known_vulnerability_fails_the_audit(tmp_path: Path) -> None:
    report = {
        "dependencies": [
            {"name": "fastapi", "version": "0.1", "vulns": []},
            {
                "name": "jinja2",
                "version": "2.0",
                "vulns": [{"id": "GHSA-x", "fix_versions": ["3"]}],
            },
        ]
    }
    done = audit(fake_pip_audit(tmp_path, report))
    assert done.returncode == 1
    assert "jinja2 2.0: GHSA-x (fixed in 3)" in done.stdout


@pytest.mark.parametrize(
    ("report", "stderr"),
    [
        ({"dependencies": [{"name": "a", "skip_reason": "Dependency not found on PyPI"}]}, ""),
        (None, "ConnectionError: Max retries exceeded"),
    ],
    ids=["mirror without advisory data", "no network"],
)
def test_no_advisory_data_is_reported_as_skipped_and_passes(
    tmp_path: Path, report: dict[str, Any] | None, stderr: str
) -> None:
    done = audit(fake_pip_audit(tmp_path, report, stderr))
    assert done.returncode == 0
    assert done.stdout.startswith("audit: SKIPPED:")


def test_a_clean_audit_passes(tmp_path: Path) -> None:
    report = {"dependencies": [{"name": "fastapi", "version": "0.1", "vulns": []}]}
    done = audit(fake_pip_audit(tmp_path, report))
    assert done.returncode == 0
    assert "1 packages without known vulnerabilities" in done.stdout
