"""Domain events of users, API keys and members → the integration events others see.

Nothing secret crosses: no password hash, no API key or key hash, no guest secret.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from contracts.events import (
    ApiKeyCreated,
    ApiKeyRevoked,
    EventEnvelope,
    RoleChanged,
    RoomMemberAdded,
    RoomMemberRemoved,
    RoomMemberUpdated,
    SessionsRevoked,
    UserCreated,
    UserDeleted,
    make_envelope,
)
from services.identity.domain import ApiKey, RoomMember, User
from services.runtime.outbox import integration_event_id


def _user_event(kind: str, domain_event: Any, user: User) -> BaseModel | None:
    if kind == "Created":
        return UserCreated.model_validate(
            {
                "userId": user.user_id,
                "name": user.name,
                "role": user.role,
                "registrationDate": user.registration_date,
                "root": user.root,
            }
        )
    if kind == "RoleChanged":
        return RoleChanged.model_validate(
            {"userId": user.user_id, "role": user.role, "roleUpdatedAt": domain_event.at}
        )
    if kind == "SessionsClosed":
        return SessionsRevoked(
            userId=user.user_id,
            sessionIds=list(domain_event.session_ids),
            reason=domain_event.reason,
            revokedAt=int(domain_event.timestamp.timestamp() * 1000),
        )
    if kind == "Deleted":
        return UserDeleted(userId=user.user_id, deletedAt=domain_event.at)
    return None  # SessionOpened, PasswordSet: nothing others need


def _member_event(kind: str, domain_event: Any, member: RoomMember) -> BaseModel | None:
    if kind in ("Added", "Readded"):
        return RoomMemberAdded.model_validate(
            {
                "roomId": member.room_id,
                "memberId": member.member_id,
                "type": member.member_type,
                "userId": member.user_id,
                "name": member.name,
                "baseRole": member.base_role,
                "customPermissions": member.custom_permissions,
            }
        )
    if kind == "Updated":
        return RoomMemberUpdated.model_validate(
            {
                "roomId": member.room_id,
                "memberId": member.member_id,
                "baseRole": member.base_role,
                "customPermissions": member.custom_permissions,
                "permissionsUpdatedAt": member.permissions_updated_at,
            }
        )
    if kind == "Removed":
        return RoomMemberRemoved(
            roomId=member.room_id,
            memberId=member.member_id,
            removedAt=domain_event.at,
            reason=domain_event.reason,
        )
    return None


def _api_key_event(kind: str, domain_event: Any, api_key: ApiKey) -> BaseModel | None:
    if kind == "Created":
        return ApiKeyCreated(
            keyId=api_key.key_id, prefix=api_key.prefix, creationDate=api_key.creation_date
        )
    if kind == "Revoked":
        return ApiKeyRevoked(keyId=api_key.key_id, revokedAt=domain_event.at)
    return None


def identity_integration_event(domain_event: Any, aggregate: Any) -> Sequence[EventEnvelope]:
    """The integration events of one domain event, given its aggregate right after it."""
    kind = type(domain_event).__name__
    data: BaseModel | None
    if isinstance(aggregate, User):
        data, subject_id = _user_event(kind, domain_event, aggregate), aggregate.user_id
    elif isinstance(aggregate, RoomMember):
        data = _member_event(kind, domain_event, aggregate)
        subject_id = f"{aggregate.room_id}/{aggregate.member_id}"
    elif isinstance(aggregate, ApiKey):
        data, subject_id = _api_key_event(kind, domain_event, aggregate), aggregate.key_id
    else:
        return []
    if data is None:
        return []
    return [
        make_envelope(
            integration_event_id(domain_event.originator_id, domain_event.originator_version),
            data,
            source="identity",
            subject_id=subject_id,
            occurred_at=domain_event.timestamp,
        )
    ]
