"""The Kubernetes manifests: rendered by kustomize, checked for the properties we promise."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2] / "deploy" / "k8s" / "overlays"


def render(overlay: str) -> list[dict[str, Any]]:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed on this machine")
    out = subprocess.run(
        ["kubectl", "kustomize", str(ROOT / overlay)], check=True, capture_output=True, text=True
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


SERVICES = {"rooms", "meetings", "recordings", "janitor", "identity", "gateway"}


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_every_service_deployment_is_hardened_and_probed(overlay: str) -> None:
    deployments = {d["metadata"]["name"]: d for d in of_kind(render(overlay), "Deployment")}
    assert {f"meetplane-{s}" for s in SERVICES} <= set(deployments)
    for service in SERVICES:
        spec = deployments[f"meetplane-{service}"]["spec"]["template"]["spec"]
        assert spec["automountServiceAccountToken"] is False
        assert spec["securityContext"]["runAsNonRoot"] is True
        (container,) = spec["containers"]
        assert container["args"] == ["serve", service]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
        assert container["resources"]["limits"] and container["resources"]["requests"]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_prod_runs_three_replicas_and_nats_cluster() -> None:
    docs = render("prod")
    for deployment in of_kind(docs, "Deployment"):
        assert deployment["spec"]["replicas"] == 3, deployment["metadata"]["name"]
    (nats,) = [s for s in of_kind(docs, "StatefulSet") if s["metadata"]["name"] == "nats"]
    assert nats["spec"]["replicas"] == 3 and nats["spec"]["volumeClaimTemplates"]
    (job,) = of_kind(docs, "Job")
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == [
        "streams",
        "declare",
        "--replicas",
        "3",
    ]
    assert {h["metadata"]["name"] for h in of_kind(docs, "HorizontalPodAutoscaler")} == {
        "meetplane-gateway",
        "meetplane-meetings",
    }
    assert not [s for s in of_kind(docs, "Secret") if s.get("data")], (
        "prod must only reference secrets"
    )


def test_only_the_gateway_takes_ingress() -> None:
    policies = {p["metadata"]["name"]: p["spec"] for p in of_kind(render("prod"), "NetworkPolicy")}
    deny = policies["default-deny"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    external = [
        name
        for name, spec in policies.items()
        if any(
            "namespaceSelector" in src for rule in spec.get("ingress", []) for src in rule["from"]
        )
    ]
    assert external == ["gateway-ingress"]
