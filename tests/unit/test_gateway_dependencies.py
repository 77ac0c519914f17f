"""Every gateway endpoint and dependency is async: a sync one costs a thread hop per request.

FastAPI runs a plain `def` dependency or endpoint in the thread pool; on the
command path that hop (and the queue behind busy requests) is pure overhead.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import Mount

from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings


def _routes(routes: list[Any]) -> Iterator[Any]:
    """API routes, including those of included routers (FastAPI keeps them as contexts)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "effective_route_contexts"):
            yield from (c for c in route.effective_route_contexts() if c.dependant is not None)
        elif isinstance(route, Mount) and route.routes:
            yield from _routes(route.routes)


def _sync_calls(dependant: Dependant) -> Iterator[str]:
    for dependency in dependant.dependencies:
        call = dependency.call
        target = call if inspect.isfunction(call) or inspect.ismethod(call) else call.__call__  # type: ignore[union-attr]
        if not inspect.iscoroutinefunction(target):
            yield getattr(call, "__qualname__", repr(call))
        yield from _sync_calls(dependency)


def test_no_endpoint_or_dependency_runs_in_the_thread_pool() -> None:
    app = create_app(GatewaySettings(api_key="k"))
    routes = list(_routes(app.routes))
    assert len(routes) > 50, "the walk found the API's routes"
    sync = sorted(
        {
            f"{route.path}: {name}"
            for route in routes
            for name in [
                *(
                    ()
                    if inspect.iscoroutinefunction(route.endpoint)
                    else (route.endpoint.__qualname__,)
                ),
                *_sync_calls(route.dependant),
            ]
        }
    )
    assert not sync, "sync endpoints or dependencies (make them `async def`):\n" + "\n".join(sync)
