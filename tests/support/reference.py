"""Validate meetplane's requests, responses and webhook bodies against OpenVidu Meet's specs.

The reference specs (tests/reference/) are OpenAPI 3.1, whose schemas are JSON
Schema 2020-12: each operation's schema is validated with `jsonschema`, `$ref`s
resolved inside the same document.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

REFERENCE = Path(__file__).resolve().parent.parent / "reference"
PUBLIC_V380 = "openvidu-meet-api-v3.8.0.yaml"
INTERNAL_V380 = "openvidu-meet-internal-api-v3.8.0.yaml"
MEETING_CONTROL_39 = "openvidu-meet-api-3.9-meeting-control.yaml"
URI = "urn:openvidu-meet"


class SpecViolation(AssertionError):
    """A body or status the reference spec does not allow."""


@functools.cache
def load(name: str) -> dict[str, Any]:
    """A reference spec, parsed."""
    with (REFERENCE / name).open() as spec:
        return yaml.safe_load(spec)  # type: ignore[no-any-return]


@functools.cache
def _registry(name: str) -> Registry:
    resource = Resource.from_contents(load(name), default_specification=DRAFT202012)
    return Registry().with_resource(f"{URI}/{name}", resource)


def _resolve(name: str, node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = load(name)
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def _check(name: str, schema: dict[str, Any], instance: Any, what: str) -> None:
    validator = jsonschema.Draft202012Validator(_rebase(name, schema), registry=_registry(name))
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.path))
    if errors:
        detail = "; ".join(f"{'/'.join(map(str, e.path)) or '<root>'}: {e.message}" for e in errors)
        raise SpecViolation(f"{what}: {detail}")


def _rebase(name: str, schema: Any) -> Any:
    # Local refs (#/components/...) point into the spec document in the registry.
    if isinstance(schema, dict):
        return {
            k: (f"{URI}/{name}{v}" if k == "$ref" and v.startswith("#") else _rebase(name, v))
            for k, v in schema.items()
        }
    if isinstance(schema, list):
        return [_rebase(name, v) for v in schema]
    return schema


def _operation(name: str, method: str, path: str) -> dict[str, Any]:
    paths = load(name)["paths"]
    if path not in paths:
        raise SpecViolation(f"{path} is not in {name}")
    operation = paths[path].get(method.lower())
    if operation is None:
        raise SpecViolation(f"{method} {path} is not in {name}")
    return operation  # type: ignore[no-any-return]


def check_response(
    name: str,
    method: str,
    path: str,
    status: int,
    body: Any = None,
    headers: dict[str, str] | None = None,
    content_type: str = "application/json",
) -> None:
    """The status is documented for the operation and the body fits its schema."""
    operation = _operation(name, method, path)
    response = operation["responses"].get(str(status))
    if response is None:
        raise SpecViolation(f"{method} {path}: status {status} is not documented")
    response = _resolve(name, response)
    if headers is not None:
        sent = {h.lower() for h in headers}
        for header in response.get("headers") or {}:
            if header.lower() not in sent:
                raise SpecViolation(f"{method} {path} {status}: header {header} missing")
    content = response.get("content") or {}
    if content_type not in content:
        if body is not None and content:
            raise SpecViolation(f"{method} {path} {status}: no {content_type} documented")
        return
    schema = content[content_type].get("schema")
    if schema is not None and content_type == "application/json":
        _check(name, schema, body, f"{method} {path} {status}")


def check_request(name: str, method: str, path: str, body: Any) -> None:
    """A request body fits the operation's request schema."""
    operation = _operation(name, method, path)
    request = _resolve(name, operation["requestBody"])
    _check(name, request["content"]["application/json"]["schema"], body, f"{method} {path} body")


def check_parameters(name: str, method: str, path: str, query: dict[str, str]) -> None:
    """Every query parameter sent is one the operation declares."""
    operation = _operation(name, method, path)
    declared = {
        _resolve(name, p)["name"]
        for p in operation.get("parameters", [])
        if _resolve(name, p)["in"] == "query"
    }
    unknown = set(query) - declared
    if unknown:
        raise SpecViolation(f"{method} {path}: undeclared query parameters {sorted(unknown)}")


def check_webhook(name: str, body: Any, headers: dict[str, str]) -> None:
    """A webhook request fits the spec's `webhooks` section for its event."""
    event = body.get("event")
    webhook = load(name).get("webhooks", {}).get(event)
    if webhook is None:
        raise SpecViolation(f"webhook event {event!r} is not in {name}")
    operation = webhook["post"]
    for parameter in operation.get("parameters", []):
        header = _resolve(name, parameter)
        if header.get("required") and header["name"].lower() not in {h.lower() for h in headers}:
            raise SpecViolation(f"webhook {event}: header {header['name']} missing")
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    _check(name, schema, body, f"webhook {event}")


def template(path: str) -> str:
    """A concrete API path as the spec's template (`/recordings/r--EG_1--x` → `/recordings/{recordingId}`)."""
    path = re.sub(r"^/(meet/)?(internal-)?api/v1", "", path.split("?")[0])
    rules = [
        (r"^/recordings/download$", "/recordings/download"),
        (r"^/recordings/[^/]+/(media|url|stop|download)$", r"/recordings/{recordingId}/\1"),
        (r"^/recordings/[^/]+$", "/recordings/{recordingId}"),
        (r"^/rooms/[^/]+/(config|roles|access|status)$", r"/rooms/{roomId}/\1"),
        (r"^/rooms/[^/]+$", "/rooms/{roomId}"),
        (
            r"^/meetings/[^/]+/participants/[^/]+/role$",
            "/meetings/{roomId}/participants/{participantIdentity}/role",
        ),
        (
            r"^/meetings/[^/]+/participants/[^/]+$",
            "/meetings/{roomId}/participants/{participantIdentity}",
        ),
        (r"^/meetings/[^/]+/participants$", "/meetings/{roomId}/participants"),
        (r"^/meetings/[^/]+$", "/meetings/{roomId}"),
        (r"^/webhooks/[^/]+/test$", "/webhooks/{webhookId}/test"),
        (r"^/webhooks/[^/]+$", "/webhooks/{webhookId}"),
    ]
    for pattern, replacement in rules:
        if re.match(pattern, path):
            return re.sub(pattern, replacement, path)
    return path
