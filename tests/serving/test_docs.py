"""`/docs` and `/redoc` load nothing from outside the API: FastAPI's default pages took Swagger UI and
ReDoc from cdn.jsdelivr.net and stayed blank on a machine without internet. The pages and the assets
they name are requested from the real app (its routes, middleware and error handlers; no database is
needed to serve them, so its lifespan is not entered)."""

from __future__ import annotations

import hashlib
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from metrify_assets.env import resolve_settings
from metrify_assets.serving.app import create_app

SECRET = "test-secret-of-at-least-32-bytes-for-hs256"


class Links(HTMLParser):
    """Every `src` and `href` of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


def links(html: str) -> list[str]:
    parser = Links()
    parser.feed(html)
    return parser.urls


def docs_client(home: Path, root_path: str = "") -> TestClient:
    settings = resolve_settings({"METRIFY_HOME": str(home), "METRIFY_API_JWT_SECRET": SECRET})
    return TestClient(create_app(settings), root_path=root_path)


@pytest.fixture(scope="module")
def app_client(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    return docs_client(tmp_path_factory.mktemp("api-docs"))


@pytest.mark.parametrize(
    ("page", "script"), [("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")]
)
def test_a_docs_page_names_only_the_apis_own_assets_and_they_are_served(
    app_client: TestClient, page: str, script: str
) -> None:
    response = app_client.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "http://" not in response.text and "https://" not in response.text and "//cdn" not in response.text
    urls = links(response.text)
    assert f"/docs/assets/{script}" in urls
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), url
        asset = app_client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 1000, url
    js = app_client.get(f"/docs/assets/{script}")
    assert js.headers["content-type"].startswith("text/javascript")
    assert js.text.lstrip().startswith(("/*!", "!function")), js.text[:80]


def test_swagger_ui_is_5_and_reads_the_apis_openapi_3_1_without_the_online_validator(
    app_client: TestClient,
) -> None:
    """Swagger UI 4 cannot render OpenAPI 3.1, and its default validator badge sends the spec's
    address to validator.swagger.io."""
    page = app_client.get("/docs").text
    bundle = app_client.get("/docs/assets/swagger-ui-bundle.js").text
    (version,) = re.findall(r'PACKAGE_VERSION:"([0-9.]+)"', bundle)
    assert int(version.split(".")[0]) >= 5, version
    assert app_client.get("/docs/assets/swagger-ui.css").headers["content-type"].startswith("text/css")
    assert '"validatorUrl": null' in page
    (spec_url,) = re.findall(r"url: '([^']+)'", page)
    assert spec_url == "/openapi.json"
    assert app_client.get(spec_url).json()["openapi"].startswith("3.1")


def test_behind_a_proxy_prefix_the_pages_name_their_assets_under_it(tmp_path: Path) -> None:
    client = docs_client(tmp_path, root_path="/metrify")
    urls = links(client.get("/docs").text)
    assert "/metrify/docs/assets/swagger-ui-bundle.js" in urls
    assert all(url.startswith("/metrify/docs/assets/") for url in urls), urls
    assert "url: '/metrify/openapi.json'" in client.get("/docs").text


def test_an_asset_the_package_does_not_have_is_the_apis_404(app_client: TestClient) -> None:
    response = app_client.get("/docs/assets/swagger-ui-bundle.js.map")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


# The bundles the notices in metrify_assets/serving/static/licences/ are for (its README.md): a new
# fastapi-offline with other bundles needs the notices of their versions.
BUNDLES = {
    "swagger-ui-bundle.js": "4b5a9b35a1adf37f00d39c0bae23cdb37007e2946240ef035137cc85b4d55349",  # swagger-ui-dist@5.32.6
    "redoc.standalone.js": "1320f442151c57c447d3b70c7ffc6c4f86d08464020fe34c8cc5d3164e9944f0",  # redoc@2.5.3
}


@pytest.mark.parametrize(
    ("notice", "licence"),
    [
        ("swagger-ui-bundle.js.LICENSE.txt", "Apache License"),
        ("redoc.standalone.js.LICENSE.txt", "The MIT License (MIT)"),
    ],
)
def test_a_bundles_licence_notice_is_served_where_its_first_line_says_with_its_packages_licence(
    app_client: TestClient, notice: str, licence: str
) -> None:
    response = app_client.get(f"/docs/assets/{notice}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "@license React" in response.text  # the upstream notice of the bundled third-party code
    assert licence in response.text  # then the package's own licence


@pytest.mark.parametrize("bundle", sorted(BUNDLES))
def test_every_notice_a_served_bundle_names_is_served(app_client: TestClient, bundle: str) -> None:
    script = app_client.get(f"/docs/assets/{bundle}")
    assert hashlib.sha256(script.content).hexdigest() == BUNDLES[bundle], (
        f"{bundle} is not the one whose notices are served: see metrify_assets/serving/static/licences/README.md"
    )
    named = set(re.findall(r"For license information please see ([^\s*]+)", script.text))
    assert f"{bundle}.LICENSE.txt" in named
    for notice in named:
        response = app_client.get(f"/docs/assets/{notice}")
        assert response.status_code == 200, notice
        assert response.headers["content-type"].startswith("text/plain"), notice


def test_every_route_summary_is_whole_with_its_brackets_closed(app_client: TestClient) -> None:
    """A trial's /docs read "A grid node's system-state events (ENTSO-E states": the summary was cut
    at the description's first colon."""
    spec = app_client.get("/openapi.json").json()
    summaries = {
        f"{method.upper()} {path}": operation.get("summary", "")
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
    }
    assert summaries["GET /v1/grid/nodes/{grid_node_id}/states"].endswith("alert, emergency, ...)")
    unbalanced = {route: text for route, text in summaries.items() if text.count("(") != text.count(")")}
    assert not unbalanced, unbalanced
