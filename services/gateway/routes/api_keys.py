"""`/api-keys` (internal API): create (shown once), list (prefixes only), delete."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from services.gateway.rpc import RpcDep
from services.gateway.schemas import (
    ApiKey,
    Message,
    documented,
)

router = APIRouter(prefix="/api-keys", tags=["api-keys"])


def _listed(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "key": f"{record['prefix']}…",
        "creationDate": record["creationDate"],
        "keyId": record["keyId"],
    }


@router.post("", summary="Create an API key (the only time it is shown)", **documented(ApiKey, 201))
async def create_api_key(rpc: RpcDep) -> dict[str, Any]:
    created = await rpc("identity", "create_api_key", {})
    return {
        "key": created["key"],
        "creationDate": created["creationDate"],
        "keyId": created["keyId"],
    }


@router.get("", summary="List API keys (prefixes only)", **documented(list[ApiKey]))
async def list_api_keys(rpc: RpcDep) -> list[dict[str, Any]]:
    return [_listed(k) for k in await rpc.retrying("identity", "list_api_keys", {})]


@router.delete("", summary="Delete every API key", **documented(Message))
async def delete_api_keys(rpc: RpcDep) -> dict[str, Any]:
    await rpc.retrying("identity", "revoke_all_api_keys", {})
    return {"message": "API keys deleted successfully"}


@router.delete(
    "/{keyId}",
    summary="Delete one API key (meetplane: rotation without downtime)",
    **documented(Message, errors=(404,)),
)
async def delete_api_key(
    keyId: Annotated[str, Path(min_length=1, max_length=40, pattern=r"^[a-f0-9]+$")], rpc: RpcDep
) -> dict[str, Any]:
    await rpc.retrying("identity", "revoke_api_key", {"keyId": keyId})
    return {"message": f"API key '{keyId}' deleted successfully"}
