"""`/auth/login`, `/auth/refresh`, `/auth/logout` (internal API): sessions as JWTs.

The identity service checks passwords and keeps sessions; the gateway signs
the tokens (`services.gateway.tokens`).  Failed sign-ins are rate-limited per
user and per client address (`services.gateway.ratelimits`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Request

from contracts.commands import identity as cmd
from contracts.identity import LoginRequest
from services.gateway.errors import ApiError
from services.gateway.ratelimits import client_address, rate_limits
from services.gateway.rpc import RpcDep
from services.gateway.schemas import (
    Message,
    Tokens,
    documented,
)
from services.gateway.tokens import InvalidToken, TokenService

router = APIRouter(prefix="/auth", tags=["auth"])

RefreshHeader = Annotated[str | None, Header(alias="X-Refresh-Token", max_length=4000)]


def _tokens(request: Request) -> TokenService:
    tokens: TokenService = request.app.state.tokens
    return tokens


def issue_tokens(request: Request, session: dict[str, Any]) -> dict[str, Any]:
    """Access and refresh tokens for an open session (login, change-password)."""
    tokens = _tokens(request)
    body: dict[str, Any] = {
        "accessToken": tokens.access_token(
            session["userId"], session["role"], session["sessionId"]
        ),
        "refreshToken": tokens.refresh_token(
            session["userId"], session["sessionId"], session["expiresAt"]
        ),
    }
    if session.get("mustChangePassword"):
        body["mustChangePassword"] = True
    return body


@router.post("/login", summary="Sign in", **documented(Tokens, errors=(404,)))
async def login(body: LoginRequest, request: Request, rpc: RpcDep) -> dict[str, Any]:
    try:
        session = await rate_limits(request).login_attempt(
            body.userId,
            client_address(request),
            lambda: rpc("identity", "login", cmd.Login(userId=body.userId, password=body.password)),
        )
    except ApiError as exc:
        if exc.status != 401:
            raise
        raise ApiError(404, "Login Error", "Invalid user ID or password") from None
    return {
        "message": f"User '{session['userId']}' logged in successfully",
        **issue_tokens(request, session),
    }


def _refresh_claims(request: Request, token: str | None) -> dict[str, Any]:
    if not token:
        raise ApiError(400, "Refresh Token Error", "No refresh token provided")
    try:
        claims: dict[str, Any] = request.app.state.authenticator.refresh_token(token)
        return claims
    except InvalidToken:
        raise ApiError(400, "Refresh Token Error", "Invalid refresh token") from None


@router.post(
    "/refresh",
    summary="A new access token from a refresh token",
    **documented(Tokens, errors=(400,)),
)
async def refresh(request: Request, rpc: RpcDep, token: RefreshHeader = None) -> dict[str, Any]:
    claims = _refresh_claims(request, token)
    try:
        session = await rpc.retrying(
            "identity", "refresh", cmd.SessionRef(userId=claims["sub"], sessionId=claims["sid"])
        )
    except ApiError as exc:
        if exc.status != 401:
            raise
        raise ApiError(400, "Refresh Token Error", "Invalid refresh token") from None
    access = _tokens(request).access_token(session["userId"], session["role"], session["sessionId"])
    return {
        "message": f"Access token for user '{session['userId']}' successfully refreshed",
        "accessToken": access,
    }


@router.post(
    "/logout", summary="Sign out: the session's tokens stop working", **documented(Message)
)
async def logout(
    request: Request,
    rpc: RpcDep,
    token: RefreshHeader = None,
    authorization: Annotated[str | None, Header(max_length=4000)] = None,
) -> dict[str, Any]:
    claims: dict[str, Any] | None = None
    tokens = _tokens(request)
    try:
        if token:
            claims = tokens.verify(token, "refresh")
        elif authorization and authorization.lower().startswith("bearer "):
            claims = tokens.verify(authorization[7:].strip(), "access")
    except InvalidToken:
        claims = None  # nothing to end: logging out stays a success
    if claims is not None:
        await rpc.retrying(
            "identity", "logout", cmd.SessionRef(userId=claims["sub"], sessionId=claims["sid"])
        )
    return {"message": "Logout successful"}
