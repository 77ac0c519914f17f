"""What every page shares: templates, security headers, HTML error pages, CSRF, the session.

`PageRoute` turns anything a page raises into an HTML page with the right status (an
`ApiError` from the API keeps its status and message; bad input is a 400), so no page
answers JSON or a bare 500.  Pages carry tokens or secrets, so none is cached, and
the Content-Security-Policy allows only the gateway's own scripts.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from starlette.responses import RedirectResponse

from services.gateway.errors import ApiError
from services.gateway.tokens import InvalidToken, TokenService
from services.runtime.logging import get_logger

log = get_logger("meetplane.gateway.web")

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
STATIC_PATH = "/assets"
templates = Jinja2Templates(directory=HERE / "templates")

SESSION_COOKIE = "mp_session"
REFRESH_COOKIE = "mp_refresh"
CSRF_COOKIE = "mp_csrf"
CSRF_FIELD = "csrf"


def _datetime(value: Any) -> str:
    """Epoch milliseconds as a UTC date and time."""
    if not isinstance(value, int | float):
        return ""
    return datetime.fromtimestamp(value / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


templates.env.filters["datetime"] = _datetime
templates.env.globals["static"] = STATIC_PATH

CSP = (
    "default-src 'self'; script-src 'self' 'nonce-{nonce}'; style-src 'self'; "
    "img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self' ws: wss:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


def secure_headers(response: Response, nonce: str, csp: str = CSP) -> Response:
    """The headers every page carries."""
    response.headers["Content-Security-Policy"] = csp.format(nonce=nonce)
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    return response


def nonce_of(request: Request) -> str:
    """This request's CSP nonce."""
    nonce: str | None = getattr(request.state, "csp_nonce", None)
    if nonce is None:
        nonce = secrets.token_urlsafe(16)
        request.state.csp_nonce = nonce
    return nonce


def render(
    request: Request, template: str, context: dict[str, Any] | None = None, status: int = 200
) -> Response:
    """A page from a template, with the CSRF token and the nonce in its context."""
    values = {
        "request": request,
        "nonce": nonce_of(request),
        "csrf": csrf_token(request),
        "appearance": getattr(request.state, "appearance", None),
        **(context or {}),
    }
    return templates.TemplateResponse(request, template, values, status_code=status)


# Titles of error pages by status; the message says what happened in words.
ERROR_TITLES = {
    400: "This request is not valid",
    401: "Please sign in",
    403: "Not allowed",
    404: "Not found",
    409: "Not possible right now",
    410: "Gone",
    422: "Please check what you entered",
    429: "Too many attempts",
    503: "Temporarily unavailable",
}


def error_page(request: Request, status: int, message: str, title: str | None = None) -> Response:
    """A clear HTML page for an error (never JSON)."""
    heading = title or ERROR_TITLES.get(status, "Something went wrong")
    return render(request, "error.html", {"title": heading, "message": message}, status)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ())[1:]) or "input"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid input"


class PageRoute(APIRoute):
    """A page: errors become HTML pages, every answer carries the security headers."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page(request: Request) -> Response:
            try:
                response = await handler(request)
            except ApiError as exc:
                status = exc.status if 400 <= exc.status < 600 else 500
                response = error_page(request, status, exc.message)
            except RequestValidationError as exc:
                response = error_page(request, 400, _validation_message(exc))
            except Exception:
                log.exception("web.page_error", path=request.url.path)
                response = error_page(request, 500, "An unexpected error happened; see the log.")
            return secure_headers(response, nonce_of(request))

        return page


# ---- CSRF (double submit: a random cookie, echoed by every form) ------------------------


def csrf_token(request: Request) -> str:
    """The CSRF token of this browser (created on first use; set by `remember_csrf`)."""
    token: str | None = getattr(request.state, "csrf", None)
    if token is None:
        token = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)
        request.state.csrf = token
    return token


def secure_cookies(request: Request) -> bool:
    """Cookies are `Secure` when the gateway is reached over TLS."""
    base: str = request.app.state.settings.base_url()
    return request.url.scheme == "https" or base.startswith("https://")


def remember_csrf(request: Request, response: Response) -> None:
    """Set the CSRF cookie if the browser does not have it yet."""
    token = csrf_token(request)
    if request.cookies.get(CSRF_COOKIE) != token:
        response.set_cookie(
            CSRF_COOKIE,
            token,
            httponly=True,
            samesite="strict",
            secure=secure_cookies(request),
            path="/",
        )


def check_csrf(request: Request, submitted: str | None) -> None:
    """A form post must echo the CSRF cookie (403 otherwise)."""
    cookie = request.cookies.get(CSRF_COOKIE)
    if not cookie or not submitted or not hmac.compare_digest(cookie, submitted):
        raise ApiError(
            403, "csrf", "This form has expired or was not sent by this site; please try again."
        )


# ---- the console session (cookies holding the /auth/login tokens) ------------------------


def set_session(request: Request, response: Response, tokens: dict[str, Any]) -> None:
    """Keep the tokens of `/auth/login` in HttpOnly, SameSite=Strict cookies."""
    secure = secure_cookies(request)
    response.set_cookie(
        SESSION_COOKIE,
        tokens["accessToken"],
        httponly=True,
        samesite="strict",
        secure=secure,
        path="/",
    )
    if tokens.get("refreshToken"):
        response.set_cookie(
            REFRESH_COOKIE,
            tokens["refreshToken"],
            httponly=True,
            samesite="strict",
            secure=secure,
            path="/",
        )


def clear_session(response: Response) -> None:
    """Forget the session cookies."""
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(REFRESH_COOKIE, path="/")


def session_token(request: Request) -> str | None:
    """The access token of the session cookie if it is still valid (signature and expiry)."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    tokens: TokenService = request.app.state.tokens
    try:
        tokens.verify(token, "access")
    except InvalidToken:
        return None
    return token


def to_login(request: Request) -> RedirectResponse:
    """Send the browser to the sign-in page, coming back here afterwards."""
    from urllib.parse import quote

    target = request.url.path
    if request.url.query:
        target += "?" + request.url.query
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
