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
    return set(config["data"]) | {e["name"] for e in container.get("env", [])}


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
