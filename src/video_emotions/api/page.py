"""The web page: ``GET /`` and its files under ``/static``, all served from the package.

Plotly's bundle comes from the ``plotly`` wheel (``plotly/package_data/plotly.min.js``): no CDN,
no npm, no build step, so the page works on a machine without internet access. The page holds no
secret: it asks for an API key when the API answers 401 and sends it as ``X-API-Key`` itself.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles

from video_emotions.reports.colors import colors_script

PAGE_URL = "/"
STATIC_URL = "/static"
#: The page's own files (index.html, app.js, style.css, timeline.js), shipped in the wheel.
STATIC_DIR = Path(__file__).resolve().parent / "static"
PLOTLY_URL = f"{STATIC_URL}/plotly.min.js"
#: ``window.VE_COLORS``: the expressions' colours from Python, the one source of them.
COLORS_URL = f"{STATIC_URL}/colors.js"


def plotly_bundle() -> Path:
    """Plotly's minified bundle, as the ``plotly`` wheel ships it."""
    return Path(str(files("plotly") / "package_data" / "plotly.min.js"))


def add_page(app: FastAPI) -> None:
    """Serve the page at ``/`` and its files under ``/static`` (none of them in the OpenAPI schema)."""

    @app.get(PAGE_URL, include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    # Before the mount: a route added earlier answers first.
    @app.get(PLOTLY_URL, include_in_schema=False)
    async def plotly_js() -> FileResponse:
        return FileResponse(plotly_bundle(), media_type="text/javascript")

    @app.get(COLORS_URL, include_in_schema=False)
    async def colors_js() -> Response:
        return Response(colors_script(), media_type="text/javascript")

    app.mount(STATIC_URL, StaticFiles(directory=STATIC_DIR), name="static")
