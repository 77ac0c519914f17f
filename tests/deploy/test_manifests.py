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
    hpas = {
        h["spec"]["scaleTargetRef"]["name"]: h["spec"]
        for h in of_kind(docs, "HorizontalPodAutoscaler")
    }
    assert set(hpas) == {"meetplane-gateway", "meetplane-meetings"}
    for deployment in of_kind(docs, "Deployment"):
        name = deployment["metadata"]["name"]
        replicas = hpas[name]["minReplicas"] if name in hpas else deployment["spec"]["replicas"]
        assert replicas == 3, name
    (nats,) = [s for s in of_kind(docs, "StatefulSet") if s["metadata"]["name"] == "nats"]
    assert nats["spec"]["replicas"] == 3 and nats["spec"]["volumeClaimTemplates"]
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


# ---- deployment defects found by cross-checking the manifests against the code ----------

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def deployments(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in of_kind(docs, "Deployment")}


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_hpa_managed_deployments_set_no_replicas(overlay: str) -> None:
    """An applied `replicas` would reset what the HPA chose on every release."""
    docs = render(overlay)
    by_name = deployments(docs)
    targets = [
        h["spec"]["scaleTargetRef"]["name"] for h in of_kind(docs, "HorizontalPodAutoscaler")
    ]
    assert targets
    for name in targets:
        assert "replicas" not in by_name[name]["spec"], name


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_probes_give_slow_starts_time_and_outlast_the_ping(overlay: str) -> None:
    """A startupProbe holds liveness back while a pod waits for NATS, the stream and
    PostgreSQL; readiness answers within its timeout (longer than the gateway's ping)."""
    from services.gateway.settings import GatewaySettings

    ping = GatewaySettings().ready_ping_timeout
    for name, deployment in deployments(render(overlay)).items():
        if not name.startswith("meetplane-"):
            continue
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        startup = container["startupProbe"]
        assert startup["httpGet"]["path"] == "/healthz"
        assert startup["periodSeconds"] * startup["failureThreshold"] >= 120, name
        assert container["readinessProbe"].get("timeoutSeconds", 1) > ping, name


def test_stream_is_redeclared_by_every_release_without_an_immutable_job() -> None:
    """A Job's pod template is immutable, so the next release could not re-apply it; the
    declaration runs where every rollout re-runs it, with the configured replicas."""
    docs = render("prod")
    assert not of_kind(docs, "Job")
    gateway = deployments(docs)["meetplane-gateway"]["spec"]["template"]["spec"]
    (init,) = gateway["initContainers"]
    assert init["args"] == ["streams", "declare"]  # replicas from MEETPLANE_STREAM_REPLICAS
    config = next(
        c for c in of_kind(docs, "ConfigMap") if c["metadata"]["name"] == "meetplane-config"
    )
    assert config["data"]["MEETPLANE_STREAM_REPLICAS"] == "3"
    nats = next(s for s in of_kind(docs, "StatefulSet") if s["metadata"]["name"] == "nats")
    assert nats["spec"]["replicas"] == 3


def _bytes(quantity: str) -> float:
    units = {
        "Ki": 2**10,
        "Mi": 2**20,
        "Gi": 2**30,
        "Ti": 2**40,
        "K": 1e3,
        "M": 1e6,
        "G": 1e9,
        "T": 1e12,
    }
    for unit in sorted(units, key=len, reverse=True):
        if quantity.endswith(unit):
            return float(quantity[: -len(unit)]) * units[unit]
    return float(quantity)


def test_jetstream_storage_limit_leaves_room_on_its_volume() -> None:
    import re

    docs = render("prod")
    conf = next(c for c in of_kind(docs, "ConfigMap") if c["metadata"]["name"] == "nats-config")
    limit = re.search(r"max_file_store:\s*(\S+)", conf["data"]["nats.conf"])
    assert limit is not None
    nats = next(s for s in of_kind(docs, "StatefulSet") if s["metadata"]["name"] == "nats")
    (claim,) = nats["spec"]["volumeClaimTemplates"]
    volume = _bytes(claim["spec"]["resources"]["requests"]["storage"])
    assert _bytes(limit.group(1)) <= 0.85 * volume


PRIVATE = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "127.0.0.0/8"]


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_http_egress_never_reaches_cluster_or_metadata_addresses(overlay: str) -> None:
    """Webhook URLs are chosen by API users: ports 80/443 may only go to public addresses."""
    import ipaddress

    for policy in of_kind(render(overlay), "NetworkPolicy"):
        for rule in policy["spec"].get("egress", []):
            ports = {p.get("port") for p in rule.get("ports", [])}
            if not ports & {80, 443}:
                continue
            targets = rule.get("to")
            assert targets, f"{policy['metadata']['name']}: 80/443 to any address"
            for target in targets:
                block = target.get("ipBlock")
                assert block, f"{policy['metadata']['name']}: 80/443 by selector is unchecked here"
                if ipaddress.ip_network(block["cidr"]).version != 4:
                    assert {"fc00::/7", "fe80::/10"} <= set(block.get("except", []))
                    continue
                allowed = ipaddress.ip_network(block["cidr"])
                for private in PRIVATE:
                    net = ipaddress.ip_network(private)
                    if net.subnet_of(allowed):  # type: ignore[arg-type]
                        excluded = [ipaddress.ip_network(e) for e in block.get("except", [])]
                        assert any(net.subnet_of(e) for e in excluded), (  # type: ignore[arg-type]
                            f"{policy['metadata']['name']} lets 80/443 reach {private}"
                        )


def test_dev_object_storage_takes_everyone_who_reads_recordings() -> None:
    """The gateway streams recordings from S3 (presigned URLs); recordings writes them."""
    docs = render("dev")
    (minio,) = [p for p in of_kind(docs, "NetworkPolicy") if p["metadata"]["name"] == "minio"]
    allowed = {
        src["podSelector"]["matchLabels"].get("app.kubernetes.io/component")
        for rule in minio["spec"]["ingress"]
        for src in rule["from"]
    }
    assert {"gateway", "recordings"} <= allowed


def test_every_secret_the_prod_overlay_needs_is_in_the_documented_list() -> None:
    """The operator creates every Secret in prod; the README must name each one."""
    docs = render("prod")
    needed: set[str] = set()
    for doc in docs:
        if doc["kind"] == "Ingress":
            needed |= {tls["secretName"] for tls in doc["spec"].get("tls", [])}
        pod = doc.get("spec", {}).get("template", {}).get("spec", {})
        for container in pod.get("containers", []) + pod.get("initContainers", []):
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    needed.add(ref["name"])
    readme = (DEPLOY / "k8s" / "README.md").read_text()
    section = readme.split("## Secrets to create", 1)[1].split("\n## ", 1)[0]
    for name in needed:
        documented = name in section or (
            name.endswith("-postgres") and "meetplane-$s-postgres" in section
        )
        assert documented, f"secret {name} is not in deploy/k8s/README.md's list"
    assert "meetplane-tls" in needed


def test_postgres_connection_budget_is_the_documented_one() -> None:
    """Worst case: every PostgreSQL-using service at its maximum replicas, every pool full.
    Per replica: two pools (event store, read models) x (size + overflow) + 3 leases."""
    import re

    docs = render("prod")
    config = next(
        c for c in of_kind(docs, "ConfigMap") if c["metadata"]["name"] == "meetplane-config"
    )
    size = int(config["data"]["MEETPLANE_POSTGRES_POOL_SIZE"])
    overflow = int(config["data"]["MEETPLANE_POSTGRES_POOL_OVERFLOW"])
    per_replica = 2 * (size + overflow) + 3
    hpa_max = {
        h["spec"]["scaleTargetRef"]["name"]: h["spec"]["maxReplicas"]
        for h in of_kind(docs, "HorizontalPodAutoscaler")
    }
    total = 0
    for name, deployment in deployments(docs).items():
        env = deployment["spec"]["template"]["spec"]["containers"][0].get("env", [])
        if any(e["name"].endswith("_POSTGRES_DSN") for e in env):
            total += hpa_max.get(name, deployment["spec"].get("replicas", 1)) * per_replica
    readme = (DEPLOY / "k8s" / "README.md").read_text()
    documented = re.search(r"at most \*\*(\d+)\*\*\s+PostgreSQL\s+connections", readme)
    assert documented is not None, "deploy/k8s/README.md states no connection budget"
    assert total == int(documented.group(1)), f"the budget is {total}; update the README"


def test_nats_users_and_permissions_are_the_runtime_table() -> None:
    """NATS in Kubernetes carries the permission table of services/runtime/nats_auth.py."""
    from services.runtime import nats_auth

    docs = render("prod")
    (config,) = [c for c in of_kind(docs, "ConfigMap") if c["metadata"]["name"] == "nats-config"]
    refs = {user: f"NATS_PASSWORD_{user.upper()}" for user in nats_auth.USERS}
    expected = nats_auth.authorization_block(refs, references=True)
    assert expected in config["data"]["nats.conf"], "regenerate base/nats.yaml's authorization"
    (nats,) = [s for s in of_kind(docs, "StatefulSet") if s["metadata"]["name"] == "nats"]
    env = {e["name"]: e for e in nats["spec"]["template"]["spec"]["containers"][0]["env"]}
    for user, variable in refs.items():
        assert env[variable]["valueFrom"]["secretKeyRef"] == {"name": "meetplane-nats", "key": user}
    deployments = {d["metadata"]["name"]: d for d in of_kind(docs, "Deployment")}
    for service in SERVICES:
        spec = deployments[f"meetplane-{service}"]["spec"]["template"]["spec"]
        for container in [*spec["containers"], *spec.get("initContainers", [])]:
            env = {e["name"]: e for e in container.get("env", [])}
            assert env["MEETPLANE_NATS_USER"]["value"] == service
            assert env["MEETPLANE_NATS_INBOX_PREFIX"]["value"] == nats_auth.inbox_prefix(service)
            assert env["MEETPLANE_NATS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
                "name": "meetplane-nats",
                "key": service,
            }


def test_the_nats_configuration_is_valid_for_nats_server(tmp_path: Path) -> None:
    import os

    from services.runtime import nats_auth
    from services.runtime.natsserver import nats_server_binary

    (config,) = [
        c for c in of_kind(render("prod"), "ConfigMap") if c["metadata"]["name"] == "nats-config"
    ]
    path = tmp_path / "nats.conf"
    path.write_text(config["data"]["nats.conf"])
    env = {**os.environ, "POD_NAME": "nats-0"}
    env.update({f"NATS_PASSWORD_{user.upper()}": f"pw-{user}" for user in nats_auth.USERS})
    checked = subprocess.run(
        [nats_server_binary(), "-t", "-c", str(path)], env=env, capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
