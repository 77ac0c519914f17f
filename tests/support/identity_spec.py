"""Check every response of the identity routes against OpenVidu Meet's v3.8.0 specs.

`validating_client` returns an httpx client whose response hook validates each
answer of a users / auth / API key / room member / member token route with
`tests.support.reference` (status documented for the operation, body fitting
its schema, `$ref`s resolved in the bundled YAML) and records which operations
and statuses were seen, so a test can also say that it covered them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.support.reference import INTERNAL_V380, PUBLIC_V380, check_response

# meetplane extensions of these routes, absent from the v3.8.0 specs.
EXTENSIONS = {("internal", "DELETE", "/api-keys/{keyId}")}
TEMPLATES = [
    (r"^/users/me$", "/users/me"),
    (r"^/users/change-password$", "/users/change-password"),
    (r"^/users/[^/]+/(password|role)$", r"/users/{userId}/\1"),
    (r"^/users/[^/]+$", "/users/{userId}"),
    (r"^/users$", "/users"),
    (r"^/auth/(login|logout|refresh)$", r"/auth/\1"),
    (r"^/api-keys/[^/]+$", "/api-keys/{keyId}"),
    (r"^/api-keys$", "/api-keys"),
    (r"^/rooms/[^/]+/members/token/refresh$", "/rooms/{roomId}/members/token/refresh"),
    (r"^/rooms/[^/]+/members/token$", "/rooms/{roomId}/members/token"),
    (r"^/rooms/[^/]+/members/[^/]+$", "/rooms/{roomId}/members/{memberId}"),
    (r"^/rooms/[^/]+/members$", "/rooms/{roomId}/members"),
]
PREFIX = re.compile(r"^/(?:meet/)?(internal-)?api/v1(/.*)$")


def identity_operation(path: str) -> tuple[str, str] | None:
    """("public" | "internal", spec path template) of an identity route, else None."""
    match = PREFIX.match(path)
    if match is None:
        return None
    api = "internal" if match.group(1) else "public"
    for pattern, replacement in TEMPLATES:
        if re.match(pattern, match.group(2)):
            return api, re.sub(pattern, replacement, match.group(2))
    return None


@dataclass
class SpecRecorder:
    """The identity operations (api, method, template, status) a client has seen."""

    seen: set[tuple[str, str, str, int]] = field(default_factory=set)

    async def check(self, response: httpx.Response) -> None:
        """Validate one response (an httpx response hook)."""
        found = identity_operation(response.request.url.path)
        if found is None:
            return
        api, template = found
        method = response.request.method
        if (api, method, template) in EXTENSIONS:
            return
        await response.aread()
        body: Any = None
        content_type = response.headers.get("content-type", "").split(";")[0] or "application/json"
        if content_type == "application/json" and response.content:
            body = response.json()
        spec = INTERNAL_V380 if api == "internal" else PUBLIC_V380
        check_response(
            spec, method, template, response.status_code, body, dict(response.headers), content_type
        )
        self.seen.add((api, method, template, response.status_code))


def validating_client(base_url: str, recorder: SpecRecorder, **kwargs: Any) -> httpx.AsyncClient:
    """An httpx client that validates every identity response it receives."""
    return httpx.AsyncClient(
        base_url=base_url, event_hooks={"response": [recorder.check]}, timeout=15, **kwargs
    )
