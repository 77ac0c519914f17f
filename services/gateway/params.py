"""Query parameter types shared by the routes."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import Depends, Path
from pydantic import BeforeValidator

from services.gateway.errors import ApiError


def _strict_bool(value: Any) -> Any:
    # Query strings carry booleans as `true` / `false`; `1`, `yes`, `on` are not booleans.
    if isinstance(value, str) and value not in ("true", "false"):
        raise ValueError("Input should be 'true' or 'false'")
    return value


StrictQueryBool = Annotated[bool, BeforeValidator(_strict_bool)]


def sanitize_room_id(value: str) -> str:
    """A room id as v3.8.0 reads one: characters other than letters, digits, `_` and `-`
    dropped, runs of `-` or `_` collapsed, leading/trailing separators and spaces removed."""
    text = re.sub(r"[^A-Za-z0-9_\-\s]", "", value.strip())
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r"-+", "-", text)
    text = re.sub(r"_+", "_", text)
    text = re.sub(r"-+$", "", text)
    text = re.sub(r"_+$", "", text)
    text = re.sub(r"^-+", "", text)
    text = re.sub(r"^_+", "", text)
    return re.sub(r"\s+", "", text)


async def _room_id_path(roomId: Annotated[str, Path(min_length=1, max_length=100)]) -> str:
    sanitized = sanitize_room_id(roomId)
    if not sanitized:
        raise ApiError.invalid("roomId", "roomId cannot be empty after sanitization")
    return sanitized


# A room id in a path, sanitized as v3.8.0 does (`/rooms/ my room-/` is `myroom`).
RoomIdPath = Annotated[str, Depends(_room_id_path)]


def room_id_list(raw: str) -> list[str]:
    """A comma-separated list of room ids: each sanitized, empty ones dropped, no repeats."""
    ids = (sanitize_room_id(part) for part in raw.split(","))
    return list(dict.fromkeys(i for i in ids if i))
