"""`/users…` (public API) and `/users/me`, `/users/change-password` (internal API)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response

from contracts.commands import identity as cmd
from contracts.identity import (
    ChangePasswordRequest,
    CreateUserRequest,
    ResetPasswordRequest,
    UpdateRoleRequest,
    UserRole,
)
from services.gateway.api import PUBLIC_API
from services.gateway.auth import principal, unauthorized
from services.gateway.errors import ApiError
from services.gateway.routes.auth import issue_tokens
from services.gateway.rpc import RpcDep
from services.gateway.schemas import (
    BulkUsersDeleted,
    Message,
    Tokens,
    User,
    UserList,
    documented,
)

router = APIRouter(prefix="/users", tags=["users"])
me_router = APIRouter(prefix="/users", tags=["users"])

UserIdPath = Annotated[str, Path(min_length=1, max_length=100)]


def _actor(request: Request) -> str | None:
    return principal(request).user_id


@router.post("", summary="Create a user", **documented(User, 201, errors=(409,)))
async def create_user(body: CreateUserRequest, response: Response, rpc: RpcDep) -> dict[str, Any]:
    record: dict[str, Any] = await rpc("identity", "create_user", cmd.CreateUser(request=body))
    response.headers["Location"] = f"{PUBLIC_API}/users/{record['userId']}"
    return record


@router.get("", summary="List users", **documented(UserList))
async def list_users(
    rpc: RpcDep,
    userId: Annotated[str | None, Query(max_length=100)] = None,
    name: Annotated[str | None, Query(max_length=100)] = None,
    nameMatchMode: Literal["exact", "prefix", "partial", "regex"] = "exact",
    nameCaseInsensitive: bool = False,
    role: UserRole | None = None,
    maxItems: Annotated[int, Query(ge=1, le=100)] = 10,
    nextPageToken: Annotated[str | None, Query(max_length=1000)] = None,
    sortField: Literal["name", "registrationDate"] = "registrationDate",
    sortOrder: Literal["asc", "desc"] = "desc",
) -> dict[str, Any]:
    page = await rpc.retrying(
        "identity",
        "list_users",
        cmd.ListUsers(
            userId=userId,
            name=name,
            nameMatchMode=nameMatchMode,
            nameCaseInsensitive=nameCaseInsensitive,
            role=role,
            maxItems=maxItems,
            nextPageToken=nextPageToken,
            sortField=sortField,
            sortOrder=sortOrder,
        ),
    )
    return {
        "users": page["items"],
        "pagination": {k: page[k] for k in ("isTruncated", "nextPageToken", "maxItems")},
    }


@router.delete(
    "", summary="Delete several users", **documented(BulkUsersDeleted, 200, (400, BulkUsersDeleted))
)
async def bulk_delete_users(
    request: Request,
    response: Response,
    rpc: RpcDep,
    userIds: Annotated[str, Query(min_length=1, max_length=10_000)],
) -> dict[str, Any]:
    ids = [i.strip() for i in userIds.split(",") if i.strip()]
    if not ids or len(ids) > 100:
        raise ApiError.invalid("userIds", "between 1 and 100 user ids")
    outcome = await rpc(
        "identity",
        "bulk_delete_users",
        cmd.BulkDeleteUsers(userIds=ids, actorUserId=_actor(request)),
    )
    if outcome["failed"]:
        response.status_code = 400
        message = f"{len(outcome['failed'])} user(s) could not be deleted"
    else:
        message = "All users deleted successfully"
    return {"message": message, **outcome}


@router.get("/{userId}", summary="Get a user", **documented(User, errors=(404,)))
async def get_user(userId: UserIdPath, rpc: RpcDep) -> dict[str, Any]:
    record: dict[str, Any] = await rpc.retrying("identity", "get_user", {"userId": userId})
    return record


@router.delete("/{userId}", summary="Delete a user", **documented(Message, errors=(404,)))
async def delete_user(userId: UserIdPath, request: Request, rpc: RpcDep) -> dict[str, Any]:
    await rpc("identity", "delete_user", cmd.UserRef(userId=userId, actorUserId=_actor(request)))
    return {"message": f"User '{userId}' deleted successfully"}


@router.put(
    "/{userId}/password", summary="Reset a user's password", **documented(Message, errors=(404,))
)
async def reset_password(
    userId: UserIdPath, body: ResetPasswordRequest, request: Request, rpc: RpcDep
) -> dict[str, Any]:
    await rpc(
        "identity",
        "reset_password",
        cmd.ResetPassword(userId=userId, newPassword=body.newPassword, actorUserId=_actor(request)),
    )
    return {"message": f"Password for user '{userId}' has been reset successfully"}


@router.put("/{userId}/role", summary="Change a user's role", **documented(User, errors=(404,)))
async def update_role(
    userId: UserIdPath, body: UpdateRoleRequest, request: Request, rpc: RpcDep
) -> dict[str, Any]:
    record: dict[str, Any] = await rpc.retrying(
        "identity",
        "update_role",
        cmd.UpdateRole(userId=userId, role=body.role, actorUserId=_actor(request)),
    )
    return record


def _signed_out_if_gone(exc: ApiError) -> ApiError:
    """A token whose user was deleted a moment ago (before its event arrived): 401, not 404."""
    return unauthorized("User not found") if exc.status == 404 else exc


@me_router.get("/me", summary="The signed-in user", **documented(User))
async def me(request: Request, rpc: RpcDep) -> dict[str, Any]:
    try:
        record: dict[str, Any] = await rpc.retrying(
            "identity", "get_user", {"userId": principal(request).user_id}
        )
    except ApiError as exc:
        raise _signed_out_if_gone(exc) from None
    return record


@me_router.post(
    "/change-password", summary="Change your own password", **documented(Tokens, errors=(400,))
)
async def change_password(
    body: ChangePasswordRequest, request: Request, rpc: RpcDep
) -> dict[str, Any]:
    user_id = principal(request).user_id or ""
    try:
        session = await rpc(
            "identity",
            "change_password",
            cmd.ChangePassword(
                userId=user_id, currentPassword=body.currentPassword, newPassword=body.newPassword
            ),
        )
    except ApiError as exc:
        if exc.code == "invalid_password":
            raise ApiError(400, "Change Password Error", "Invalid current password") from None
        raise _signed_out_if_gone(exc) from None
    return {
        "message": f"Password for user '{user_id}' changed successfully",
        **issue_tokens(request, session),
    }
