"""``/docs`` served from the package: Swagger UI's files come from the ``fastapi-offline`` wheel,
not from a CDN, so the page works on a machine without internet access.

``fastapi-offline`` ships Swagger UI 5, the first major version that renders OpenAPI 3.1, the
version FastAPI writes (``swagger-ui-bundle`` 1.1.0, the newest, ships Swagger UI 4.15.5, which
answers a 3.1 document with "Unable to render this definition").
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_URL = "/docs"
ASSETS_URL = "/docs/assets"
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"

#: Swagger UI's bundle, stylesheet and favicon, as the ``fastapi-offline`` wheel ships them.
ASSETS_DIR = Path(str(files("fastapi_offline") / "static"))
SWAGGER_JS = "swagger-ui-bundle.js"
SWAGGER_CSS = "swagger-ui.css"
FAVICON = "favicon.png"


def add_offline_docs(app: FastAPI) -> None:
    """Serve ``/docs`` with Swagger UI from :data:`ASSETS_DIR` (for an app made with ``docs_url=None``)."""
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS_DIR), name="docs-assets")

    @app.get(DOCS_URL, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS_URL}/{SWAGGER_JS}",
            swagger_css_url=f"{root}{ASSETS_URL}/{SWAGGER_CSS}",
            swagger_favicon_url=f"{root}{ASSETS_URL}/{FAVICON}",
            oauth2_redirect_url=f"{root}{OAUTH2_REDIRECT_URL}",
            # No validator badge: it would send the document's URL to validator.swagger.io.
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get(OAUTH2_REDIRECT_URL, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()
