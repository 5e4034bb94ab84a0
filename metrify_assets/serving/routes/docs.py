"""`/docs` (Swagger UI) and `/redoc` (ReDoc) with their scripts, styles and icon served by the API
itself, from the `fastapi-offline` package's static files: FastAPI's default pages load them from
cdn.jsdelivr.net and stay blank on a machine without internet. Swagger UI is 5.x there, which the
app's OpenAPI 3.1 needs (4.x cannot render it). No token, like `/openapi.json`.

The package ships the bundles without the licence notices their first line names (`/*! For license
information please see X */`); X is served beside them from `static/licences/` (the upstream files of
the npm packages the bundles are byte-identical to; its README.md says which), followed by the
package's own licence.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.resources import files

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles

ASSETS_PATH = "/docs/assets"
ASSETS_DIR = files("fastapi_offline") / "static"
LICENCES_DIR = files("metrify_assets.serving") / "static" / "licences"
# Each notice a bundle names, and the licence files of its package served after it.
NOTICES = {
    "swagger-ui-bundle.js.LICENSE.txt": ("swagger-ui-dist.NOTICE", "swagger-ui-dist.LICENSE"),
    "redoc.standalone.js.LICENSE.txt": ("redoc.LICENSE",),
    # ReDoc's search worker, inlined in redoc.standalone.js, names its own.
    "d87bcbdbea8f8f5aa26f.worker.js.LICENSE.txt": ("redoc.LICENSE",),
}
# Swagger UI's default validator badge sends the spec's address to validator.swagger.io.
SWAGGER_UI_PARAMETERS = {"validatorUrl": None}


def install_docs(app: FastAPI) -> None:
    """Serve the pages and their assets; `app` must be built with `docs_url=None, redoc_url=None`."""
    for name, licences in NOTICES.items():  # before the mount, which would answer them with a 404
        app.add_api_route(f"{ASSETS_PATH}/{name}", served(notice(name, licences)), include_in_schema=False)
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


def notice(name: str, licences: tuple[str, ...]) -> str:
    """The upstream notice `name`, then each of `licences` under a line naming it."""
    parts = [(LICENCES_DIR / name).read_text(encoding="utf-8")]
    for licence in licences:
        parts.append(
            f"\n{'=' * 78}\n{licence}\n{'=' * 78}\n\n{(LICENCES_DIR / licence).read_text(encoding='utf-8')}"
        )
    return "".join(parts)


def served(text: str) -> Callable[[], PlainTextResponse]:
    """A route answering `text` (text/plain; no parameters for FastAPI to read from the request)."""

    def licence_notice() -> PlainTextResponse:
        return PlainTextResponse(text)

    return licence_notice
