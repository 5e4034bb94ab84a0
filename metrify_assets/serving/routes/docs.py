"""`/docs` (Swagger UI) and `/redoc` (ReDoc) with their scripts, styles and icon served by the API
itself, from the `fastapi-offline` package's static files: FastAPI's default pages load them from
cdn.jsdelivr.net and stay blank on a machine without internet. Swagger UI is 5.x there, which the
app's OpenAPI 3.1 needs (4.x cannot render it). No token, like `/openapi.json`.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS_PATH = "/docs/assets"
ASSETS_DIR = files("fastapi_offline") / "static"
# Swagger UI's default validator badge sends the spec's address to validator.swagger.io.
SWAGGER_UI_PARAMETERS = {"validatorUrl": None}


def install_docs(app: FastAPI) -> None:
    """Serve the pages and their assets; `app` must be built with `docs_url=None, redoc_url=None`."""
    app.mount(ASSETS_PATH, StaticFiles(directory=str(ASSETS_DIR)), name="docs-assets")

    def prefix(request: Request) -> str:
        """The path the app is served under behind a proxy (`root_path`), for the page's own links."""
        return str(request.scope.get("root_path", "")).rstrip("/")

    @app.get("/docs", include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        root = prefix(request)
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
            swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
        )

    @app.get("/redoc", include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        root = prefix(request)
        return get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS_PATH}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
            with_google_fonts=False,
        )
