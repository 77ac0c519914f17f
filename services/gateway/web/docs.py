"""`/docs`: Swagger UI from the vendored files, so it renders with no internet access."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html

from services.gateway.web.pages import STATIC_PATH, nonce_of, secure_headers

router = APIRouter(include_in_schema=False)

# Swagger UI styles itself inline and shows data: images; scripts only with this page's nonce.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'nonce-{nonce}'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
)


@router.get("/docs")
async def docs(request: Request) -> Response:
    nonce = nonce_of(request)
    page = get_swagger_ui_html(
        openapi_url=request.app.openapi_url or "/openapi.json",
        title=f"{request.app.title} API",
        swagger_js_url=f"{STATIC_PATH}/vendor/swagger-ui-bundle.js",
        swagger_css_url=f"{STATIC_PATH}/vendor/swagger-ui.css",
        swagger_favicon_url=f"{STATIC_PATH}/favicon.svg",
    )
    html = bytes(page.body).decode().replace("<script", f'<script nonce="{nonce}"')
    response = Response(html, media_type="text/html")
    return secure_headers(response, nonce, DOCS_CSP)
