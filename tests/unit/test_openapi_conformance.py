"""meetplane's OpenAPI against OpenVidu Meet v3.8.0's: typed, and the same statuses.

Walks the reference specs (tests/reference/) and, for every operation meetplane serves,
compares what meetplane's own `/openapi.json` declares: the success statuses, the error
body, typed response models.  The routes meetplane does not serve yet are listed in
`NOT_SERVED` (README, "Compatibility with OpenVidu Meet v3.8.0"); one that appears must
leave that list, so the list stays true.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import pytest

from services.gateway.api import INTERNAL_API, PUBLIC_API
from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings
from tests.support import reference

METHODS = ("get", "post", "put", "patch", "delete")
SPECS = (
    (reference.PUBLIC_V380, PUBLIC_API),
    (reference.INTERNAL_V380, INTERNAL_API),
    (reference.MEETING_CONTROL_39, PUBLIC_API),
)
# v3.8.0 / 3.9 operations meetplane does not serve (yet).
NOT_SERVED = {
    ("get", f"{INTERNAL_API}/config/security"),
    ("put", f"{INTERNAL_API}/config/security"),
    ("get", f"{INTERNAL_API}/config/rooms/appearance"),
    ("put", f"{INTERNAL_API}/config/rooms/appearance"),
    ("get", f"{INTERNAL_API}/config/captions"),
    ("post", f"{INTERNAL_API}/ai/assistants"),
    ("delete", f"{INTERNAL_API}/ai/assistants/{{assistantId}}"),
    ("get", f"{INTERNAL_API}/analytics"),
}
# meetplane names this path parameter `identity`.
ALIASES = {"{participantIdentity}": "{identity}"}


@functools.cache
def ours() -> dict[str, Any]:
    return create_app(GatewaySettings(api_key="k")).openapi()


def _ours(method: str, path: str) -> dict[str, Any] | None:
    for spelled, alias in ALIASES.items():
        path = path.replace(spelled, alias)
    operation: dict[str, Any] | None = ours()["paths"].get(path, {}).get(method)
    return operation


def shared_operations() -> list[tuple[str, str, str, dict[str, Any]]]:
    found, seen = [], set()
    for name, prefix in SPECS:
        for path, item in reference.load(name)["paths"].items():
            for method in METHODS:
                key = (method, f"{prefix}{path}")
                if method in item and key not in seen:
                    seen.add(key)
                    found.append((name, method, f"{prefix}{path}", item[method]))
    return found


def _schema(response: dict[str, Any]) -> dict[str, Any]:
    content = response.get("content") or {}
    if "application/json" in content:
        return content["application/json"].get("schema") or {}
    return {"binary": True} if content else {}


def _typed(schema: dict[str, Any]) -> bool:
    if schema.get("binary") or "$ref" in schema:
        return True
    if schema.get("type") == "array":
        return "$ref" in schema.get("items", {})
    return bool(schema.get("properties"))


def test_every_operation_declares_typed_success_and_error_bodies() -> None:
    untyped, no_errors = [], []
    for path, item in ours()["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                if status.startswith("2") and not _typed(_schema(response)):
                    untyped.append(f"{method.upper()} {path} {status}")
            if path.startswith(("/meet/api", "/meet/internal-api")):
                for status in ("401", "422", "500"):
                    schema = _schema(operation["responses"].get(status, {}))
                    if schema.get("$ref") != "#/components/schemas/ErrorBody":
                        no_errors.append(f"{method.upper()} {path} {status}")
    assert untyped == [] and no_errors == []


def test_no_framework_internals_in_the_document() -> None:
    text = json.dumps(ours())
    for internal in ("HTTPValidationError", "ValidationError", "errors.pydantic.dev"):
        assert internal not in text


@pytest.mark.parametrize(
    ("name", "method", "path", "spec"),
    shared_operations(),
    ids=lambda v: v if isinstance(v, str) and v.startswith("/") else "",
)
def test_shared_operation_declares_the_spec_statuses(
    name: str, method: str, path: str, spec: dict[str, Any]
) -> None:
    mine = _ours(method, path)
    if (method, path) in NOT_SERVED:
        assert mine is None, f"{method.upper()} {path} is served now: drop it from NOT_SERVED"
        return
    assert mine is not None, f"{method.upper()} {path} is not served"
    declared = set(mine["responses"])
    success = {s for s in spec["responses"] if s.startswith("2")}
    assert success <= declared, f"success statuses {sorted(success - declared)} missing"
    # Every error the spec documents that meetplane can answer is declared with the
    # `{error, message}` body (429/500 included: the gateway answers both).
    missing = {s for s in spec["responses"] if s[0] in "45"} - declared
    assert not missing, f"error statuses {sorted(missing)} not declared"
