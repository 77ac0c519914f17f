"""Room permissions of a caller: a role's, a member's (base role adjusted by overrides).

The gateway computes them when it issues a room member token; the token then
carries them, and the policy table checks them like a moderator/speaker link's.
"""

from __future__ import annotations

from typing import Any

from contracts.rooms import Permissions

RECORDING_ONLY = {name: name == "canRetrieveRecordings" for name in Permissions.model_fields}


def role_permissions(room: dict[str, Any], role: str) -> dict[str, bool]:
    """The permissions of a room role as the room is configured now."""
    if role == "recording":
        return dict(RECORDING_ONLY)
    permissions: dict[str, bool] = dict(room["roles"][role]["permissions"])
    return permissions


def member_permissions(room: dict[str, Any], member: dict[str, Any]) -> dict[str, bool]:
    """A member's effective permissions: the base role's, then the member's overrides."""
    return {**role_permissions(room, member["baseRole"]), **member.get("customPermissions", {})}
