"""deploy/compose.yaml against the Kubernetes manifests: same variables, no secret in it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.test_manifests import SERVICES, of_kind, render

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((DEPLOY / "compose.yaml").read_text()))


def k8s_environment(service: str) -> set[str]:
    """Variable names a service's Deployment sets: its ConfigMap's and its own."""
    docs = render("dev")
    config = next(
        c for c in of_kind(docs, "ConfigMap") if c["metadata"]["name"] == "meetplane-config"
    )
    deployment = next(
        d for d in of_kind(docs, "Deployment") if d["metadata"]["name"] == f"meetplane-{service}"
    )
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    variables = set(config["data"]) | {e["name"] for e in container.get("env", [])}
    # The dev overlay's fake secrets need it; compose takes real ones from deploy/.env.
    return variables - {"MEETPLANE_ALLOW_DEV_SECRETS"}


def test_every_service_gets_the_variables_its_deployment_gets() -> None:
    services = compose()["services"]
    for service in SERVICES:
        assert set(services[service]["environment"]) == k8s_environment(service), service
        assert services[service]["command"] == ["serve", service]


def test_services_restart_and_are_probed_and_locked_down() -> None:
    for name, spec in compose()["services"].items():
        assert spec["restart"] in ("unless-stopped", "always", "on-failure"), name
        assert spec["read_only"] is True and spec["cap_drop"] == ["ALL"], name
        if name in SERVICES:
            assert spec["healthcheck"]["test"], name
            assert spec["user"] == "10001:10001"


def test_secrets_come_from_the_env_file_only() -> None:
    text = (DEPLOY / "compose.yaml").read_text()
    services = compose()["services"]
    for name, spec in services.items():
        for key, value in (spec.get("environment") or {}).items():
            if (
                re.search(r"SECRET|PASSWORD|API_KEY$|DSN", key)
                and key != "MEETPLANE_LIVEKIT_API_KEY"
            ):
                assert "${" in str(value), f"{name}: {key} is written into the compose file"
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", text))
    example = (DEPLOY / "compose.env.example").read_text()
    defined = set(re.findall(r"^([A-Z0-9_]+)=", example, flags=re.MULTILINE))
    assert required and required <= defined, required - defined


def test_nats_takes_the_runtime_permission_table_and_every_service_signs_in() -> None:
    from services.runtime import nats_auth

    refs = {user: f"NATS_PASSWORD_{user.upper()}" for user in nats_auth.USERS}
    config = (DEPLOY / "nats" / "compose-nats.conf").read_text()
    assert nats_auth.authorization_block(refs, references=True) in config
    services = compose()["services"]
    assert "/etc/nats/nats.conf" in services["nats"]["command"]
    assert set(refs.values()) <= set(services["nats"]["environment"])
    for service in [*SERVICES, "declare-stream"]:
        user = "gateway" if service == "declare-stream" else service
        env = services[service]["environment"]
        assert env["MEETPLANE_NATS_USER"] == user
        assert env["MEETPLANE_NATS_INBOX_PREFIX"] == nats_auth.inbox_prefix(user)
        assert env["MEETPLANE_NATS_PASSWORD"].startswith(f"${{NATS_PASSWORD_{user.upper()}:?")


def test_the_compose_nats_configuration_is_valid_for_nats_server(tmp_path: Path) -> None:
    import os
    import subprocess

    from services.runtime import nats_auth
    from services.runtime.natsserver import nats_server_binary

    env = {**os.environ}
    env.update({f"NATS_PASSWORD_{user.upper()}": f"pw-{user}" for user in nats_auth.USERS})
    checked = subprocess.run(
        [nats_server_binary(), "-t", "-c", str(DEPLOY / "nats" / "compose-nats.conf")],
        env=env,
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
