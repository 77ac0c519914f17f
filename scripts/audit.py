#!/usr/bin/env python3
"""Dependency audit: pip-audit over the packages installed in .venv, offline-tolerant.

pip-audit (pinned, in its own venv .venv-audit so its pins never clash with the
project's) asks PyPI's advisory data about every installed distribution.  Known
vulnerabilities fail the run.  When no advisory data can be had (no network, or a
PyPI mirror that does not serve the per-version JSON API) the run says so, with the
reason, and passes: an audit that could not look is reported, never faked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

PIP_AUDIT_VERSION = "2.10.1"
ROOT = Path(__file__).resolve().parent.parent
AUDIT_VENV = Path(os.environ.get("AUDIT_VENV", ROOT / ".venv-audit"))
PROJECT_VENV = Path(os.environ.get("VENV", ROOT / ".venv"))


def pip_audit() -> Path:
    """The pinned pip-audit, installed into its own venv when missing or another version."""
    binary = AUDIT_VENV / "bin" / "pip-audit"
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    if binary.exists() and version.stdout.split()[-1:] == [PIP_AUDIT_VERSION]:
        return binary
    subprocess.run([sys.executable, "-m", "venv", AUDIT_VENV], check=True)
    subprocess.run(
        [
            AUDIT_VENV / "bin" / "python",
            "-m",
            "pip",
            "install",
            "--quiet",
            f"pip-audit=={PIP_AUDIT_VERSION}",
        ],
        check=True,
    )
    return binary


def site_packages() -> Path:
    """The project venv's site-packages."""
    found = sorted((PROJECT_VENV / "lib").glob("python3*/site-packages"))
    if not found:
        sys.exit(f"audit: no site-packages under {PROJECT_VENV} (run scripts/_venv.sh first)")
    return found[0]


def main() -> int:
    try:
        binary = pip_audit()
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"audit: SKIPPED: pip-audit {PIP_AUDIT_VERSION} could not be installed ({exc})")
        return 0
    run = subprocess.run(
        [
            binary,
            "--path",
            str(site_packages()),
            "--skip-editable",
            "--progress-spinner",
            "off",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        report = json.loads(run.stdout)
    except ValueError:
        reason = (run.stderr.strip().splitlines() or ["no output"])[-1][:300]
        print(f"audit: SKIPPED: no advisory data reachable ({reason})")
        return 0
    dependencies = report.get("dependencies", [])
    vulnerable = [d for d in dependencies if d.get("vulns")]
    audited = [d for d in dependencies if "skip_reason" not in d]
    skipped = len(dependencies) - len(audited)
    for dep in vulnerable:
        for vuln in dep["vulns"]:
            fixes = ", ".join(vuln.get("fix_versions", [])) or "no fix yet"
            print(f"audit: {dep['name']} {dep['version']}: {vuln['id']} (fixed in {fixes})")
    if vulnerable:
        print(f"audit: FAILED: {len(vulnerable)} of {len(audited)} audited packages are vulnerable")
        return 1
    if not audited:
        print(
            f"audit: SKIPPED: no advisory data for any of the {skipped} installed packages "
            "(the package index reached does not serve PyPI's per-version JSON API, or no "
            "network); nothing was checked"
        )
        return 0
    print(
        f"audit: {len(audited)} packages without known vulnerabilities"
        + (f"; {skipped} not audited (no advisory data)" if skipped else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
