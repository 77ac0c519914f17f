"""Schemathesis against meetplane: every route, a bounded number of examples.

Two runs: meetplane's own OpenAPI, and OpenVidu Meet's reference specs (v3.8.0 public,
3.9 meeting control) for every operation meetplane serves.

The platform runs as a user starts it (`meetplane up`); schemathesis generates requests
from `/openapi.json` (valid and invalid ones) and checks each answer: no 5xx, only
documented status codes, bodies that fit the documented response models, and the
documented content types.  The admin API key is sent, so the generated requests reach
the routes' validation and the services rather than stopping at authentication.
"""

from __future__ import annotations

import os

import httpx
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.platform import Platform
from tests.support.reference import REFERENCE

# Examples per operation: ~70 operations times this stays well under 90 s on a shared runner.
EXAMPLES = int(os.environ.get("MEETPLANE_FUZZ_EXAMPLES", "8"))


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def fuzz(operation: schemathesis.APIOperation, api_key: str) -> None:
    """Run the bounded examples of one operation; raise on the first failed check."""

    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: schemathesis.Case) -> None:
        response = case.call(headers={"X-API-KEY": api_key}, timeout=15)
        case.validate_response(response, checks=CHECKS)

    run()


def test_every_route_answers_as_documented(platform: Platform) -> None:
    # (schemathesis' own pytest plugin does not load under this pytest; the loop is the
    # same thing: one hypothesis run per operation.)
    api = schemathesis.openapi.from_url(f"{platform.base}/openapi.json")
    failures: dict[str, str] = {}
    operations = 0
    for loaded in api.get_all_operations():
        operation = loaded.ok()
        operations += 1
        try:
            fuzz(operation, platform.api_key)
        except (Exception, BaseExceptionGroup) as exc:
            failures[operation.label] = str(exc)[:2000]
    assert operations > 60, operations
    assert not failures, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())


REFERENCE_SPECS = (
    ("openvidu-meet-api-v3.8.0.yaml", "/meet/api/v1"),
    ("openvidu-meet-api-3.9-meeting-control.yaml", "/meet/api/v1"),
)


def test_the_reference_spec_finds_nothing(platform: Platform) -> None:
    """OpenVidu Meet's own spec, fuzzed against meetplane: what a v3.8.0 client may send."""
    served = {
        (path, method)
        for path, item in httpx.get(f"{platform.base}/openapi.json").json()["paths"].items()
        for method in item
    }
    failures: dict[str, str] = {}
    fuzzed = 0
    for name, prefix in REFERENCE_SPECS:
        api = schemathesis.openapi.from_path(REFERENCE / name)
        api.config.update(base_url=f"{platform.base}/{prefix.strip('/')}")
        for loaded in api.get_all_operations():
            operation = loaded.ok()
            path = f"{prefix}{operation.path}".replace("{participantIdentity}", "{identity}")
            if (path, operation.method.lower()) not in served:
                continue
            fuzzed += 1
            try:
                fuzz(operation, platform.api_key)
            except (Exception, BaseExceptionGroup) as exc:
                failures[f"{name} {operation.label}"] = str(exc)[:1500]
    assert fuzzed > 50, fuzzed
    assert not failures, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())
