"""Query parameter types shared by the routes."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator


def _strict_bool(value: Any) -> Any:
    # Query strings carry booleans as `true` / `false`; `1`, `yes`, `on` are not booleans.
    if isinstance(value, str) and value not in ("true", "false"):
        raise ValueError("Input should be 'true' or 'false'")
    return value


StrictQueryBool = Annotated[bool, BeforeValidator(_strict_bool)]
