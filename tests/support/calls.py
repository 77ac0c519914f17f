"""Record the calls of a method while a test runs (the method still runs)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


def record_calls(
    monkeypatch: pytest.MonkeyPatch,
    owner: object,
    name: str,
    key: Callable[..., object] = lambda *args, **kwargs: args,
) -> list[object]:
    """Wrap `owner.name` so each call appends `key(*args, **kwargs)` to the returned list."""
    calls: list[object] = []
    original = getattr(owner, name)

    def recorded(*args: Any, **kwargs: Any) -> Any:
        calls.append(key(*args, **kwargs))
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, recorded)
    return calls
