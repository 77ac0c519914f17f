"""A gateway (re)started while JetStream elects its leaders still starts.

After a NATS node restarts, JetStream answers "unavailable" for a while.  The
gateway's start-up steps against JetStream (the revocation follower, the rate
limit bucket, the webhook consumer) retry those answers instead of failing the
start: a replica restarted then came up dead in the replica chaos test.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx
import pytest
from nats.js.client import JetStreamContext
from nats.js.errors import ServiceUnavailableError

from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings
from tests.support.http import serve_app


def unavailable_once(monkeypatch: pytest.MonkeyPatch, name: str, failures: Counter[str]) -> None:
    """The first call of `JetStreamContext.<name>` answers 503, as during an election."""
    real = getattr(JetStreamContext, name)

    async def flaky(self: JetStreamContext, *args: Any, **kwargs: Any) -> Any:
        if failures[name] == 0:
            failures[name] += 1
            raise ServiceUnavailableError(code=503, description="JetStream system unavailable")
        return await real(self, *args, **kwargs)

    monkeypatch.setattr(JetStreamContext, name, flaky)


async def test_the_gateway_starts_through_jetstream_answering_unavailable(
    settings_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    failures: Counter[str] = Counter()
    gateway: GatewaySettings = settings_factory(GatewaySettings, api_key="startup-key")
    app = create_app(gateway)
    # Patched once the broker's own start-up (which has its own waiting) is through:
    # the revocation follower subscribes first, then the KV bucket, then the webhooks.
    for name in ("subscribe", "key_value", "add_consumer"):
        unavailable_once(monkeypatch, name, failures)
    async with serve_app(app) as base:
        async with httpx.AsyncClient(base_url=base) as http:
            ready = await http.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert failures == Counter({"subscribe": 1, "key_value": 1, "add_consumer": 1})
