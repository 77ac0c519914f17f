"""deploy/k8s/monitoring: a ServiceMonitor per service on a port its Service has, alerts
that say how long and how bad, a dashboard row per service.  (That every metric they
name is exported is checked against a running platform: tests/e2e/test_observability_up.py.)
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
SERVICES = {"rooms", "meetings", "recordings", "janitor", "identity", "gateway"}
ALERTS = {
    "MeetplaneConsumerLagGrowing",
    "MeetplaneOutboxLag",
    "MeetplaneMessagesDeadLettered",
    "MeetplaneTimerFiringLate",
    "MeetplaneWebhookFailureRatio",
    "MeetplaneGateway5xxRatio",
    "MeetplaneServiceNotReady",
}


def render(path: Path) -> list[dict[str, Any]]:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed on this machine")
    out = subprocess.run(
        ["kubectl", "kustomize", str(path)], check=True, capture_output=True, text=True
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def test_every_service_has_a_service_monitor_on_a_port_of_its_service() -> None:
    services = {
        d["metadata"]["name"]: {p["name"] for p in d["spec"]["ports"]}
        for d in render(K8S / "overlays" / "prod")
        if d["kind"] == "Service"
    }
    monitors = [d for d in render(K8S / "monitoring") if d["kind"] == "ServiceMonitor"]
    assert {m["metadata"]["name"] for m in monitors} == {f"meetplane-{s}" for s in SERVICES}
    for monitor in monitors:
        name = monitor["metadata"]["name"]
        component = monitor["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"]
        assert name == f"meetplane-{component}"
        (endpoint,) = monitor["spec"]["endpoints"]
        assert endpoint["path"] == "/metrics"
        assert endpoint["port"] in services[name], (name, services[name])


def test_the_alerts_that_matter_are_there_with_a_duration_and_a_severity() -> None:
    (rule,) = [d for d in render(K8S / "monitoring") if d["kind"] == "PrometheusRule"]
    alerts = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
    assert set(alerts) >= ALERTS
    for name, alert in alerts.items():
        assert alert["labels"]["severity"] in {"warning", "critical"}, name
        assert alert["annotations"]["summary"] and alert["annotations"]["description"], name
        assert alert["expr"].strip(), name
    assert alerts["MeetplaneConsumerLagGrowing"]["for"] == "5m"
    assert "> 5" in alerts["MeetplaneTimerFiringLate"]["expr"]


def test_the_dashboard_has_the_event_flow_and_a_row_per_service() -> None:
    (config,) = [d for d in render(K8S / "monitoring") if d["kind"] == "ConfigMap"]
    assert config["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(config["data"]["meetplane.json"])
    rows = [p["title"] for p in dashboard["panels"] if p["type"] == "row"]
    assert rows[0] == "Event flow"
    assert set(rows[1:]) == {*SERVICES, "NATS messages"}
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["targets"] and all(t["expr"] for t in panel["targets"]), panel["title"]


def test_prometheus_may_scrape_the_health_ports() -> None:
    (policy,) = [d for d in render(K8S / "monitoring") if d["kind"] == "NetworkPolicy"]
    ports = {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
    assert ports == {8080, 8081}
