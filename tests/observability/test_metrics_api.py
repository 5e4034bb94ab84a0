"""`GET /metrics` on the data API, through the ASGI app with its lifespan (real routing, middleware,
PostgreSQL pool): request counts per route template and status, and the pipeline metrics beside them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from metrify_assets.env import resolve_settings
from metrify_assets.observability.api_metrics import UNMATCHED
from metrify_assets.resources import PostgresResource
from metrify_assets.serving.app import create_app
from metrify_assets.serving.auth import issue_token
from metrify_platform.redis_server import RedisServer

pytestmark = pytest.mark.postgres
SECRET = "test-secret-of-at-least-32-bytes-for-hs256"
READINGS = "/v1/meters/{meter_id}/readings"
DOCS_ASSETS = "/docs/assets/{path}"  # the mount serving /docs' scripts and styles


@pytest.fixture
def client(
    pg: psycopg.Connection, pg_resource: PostgresResource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TestClient]:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))  # the instance the API opens to count runs
    settings = resolve_settings(
        {
            "METRIFY_HOME": str(tmp_path),
            "METRIFY_POSTGRES_URL": pg_resource.get_url(),
            "METRIFY_API_JWT_SECRET": SECRET,
        }
    )
    with TestClient(create_app(settings)) as client:
        yield client


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def requests(method: str, route: str, status: int) -> tuple[str, frozenset[tuple[str, str]]]:
    labels = {"method": method, "route": route, "status": str(status)}
    return "metrify_api_requests_total", frozenset(labels.items())


def test_metrics_count_requests_by_route_template_and_serve_the_pipeline(
    client: TestClient, pg: psycopg.Connection
) -> None:
    pg.execute(
        "INSERT INTO ops.ingest_ledger (batch_id, source, origin, origin_ref, raw_key, records_in, accepted, "
        "flagged, quarantined) VALUES ('b1', 'grid_status', 'kafka', 'r', 'k', 7, 5, 1, 2)"
    )
    # Registered meters without readings: an empty page (a meter the store never saw would be 404).
    pg.execute("INSERT INTO ops.meters (meter_id, segment, region) VALUES ('M1', 'r', 'n'), ('M2', 'r', 'n')")
    pg.commit()
    token = issue_token(SECRET, "tester", ["read"], timedelta(minutes=5))
    assert client.get("/healthz").status_code == 200
    for meter in ("M1", "M2"):
        response = client.get(f"/v1/meters/{meter}/readings", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.text
    assert client.get("/v1/meters/M3/readings").status_code == 401
    assert client.post("/v1/meters/M3/readings").status_code == 405
    assert client.get("/no/such/path/42").status_code == 404

    response = client.get("/metrics")  # no token: a scraper has none
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    scraped = samples(response.text)
    assert scraped[requests("GET", READINGS, 200)] == 2
    assert scraped[requests("GET", READINGS, 401)] == 1
    assert scraped[requests("POST", READINGS, 405)] == 1
    assert scraped[requests("GET", UNMATCHED, 404)] == 1
    assert scraped[requests("GET", "/healthz", 200)] == 1
    routes = {dict(labels)["route"] for name, labels in scraped if name == "metrify_api_requests_total"}
    assert routes == {READINGS, UNMATCHED, "/healthz"}  # templates only: no raw path is a label
    duration = frozenset({"method": "GET", "route": READINGS}.items())
    assert scraped[("metrify_api_request_duration_seconds_count", duration)] == 3
    assert scraped[("metrify_api_request_duration_seconds_bucket", duration | {("le", "+Inf")})] == 3
    assert scraped[("metrify_api_requests_in_progress", frozenset({("method", "GET")}))] == 1  # this scrape
    # The pipeline's metrics, from the API's pool.
    grid = frozenset({("source", "grid_status")})
    assert scraped[("metrify_records_received_total", grid)] == 7
    assert scraped[("metrify_records_quarantined_total", grid)] == 2
    errors = {
        dict(ls)["collector"]: v
        for (n, ls), v in scraped.items()
        if n == "metrify_metrics_collect_errors_total"
    }
    assert errors and not any(errors.values()), errors

    again = samples(client.get("/metrics").text)
    assert again[requests("GET", "/metrics", 200)] == 1
    # scope=api: the request metrics alone (what deploy/prometheus/prometheus.yml scrapes from the API).
    api_only = samples(client.get("/metrics", params={"scope": "api"}).text)
    assert api_only[requests("GET", "/metrics", 200)] == 2
    assert api_only and all(name.startswith("metrify_api_") for name, _ in api_only)
    assert client.get("/metrics", params={"scope": "nope"}).status_code == 422
    assert again[("metrify_api_requests_in_progress", frozenset({("method", "GET")}))] == 1


def test_head_and_the_docs_assets_are_labelled_with_their_route_not_unmatched(
    client: TestClient, pg: psycopg.Connection
) -> None:
    """`HEAD /v1/consumption/daily` (an uptime check) and Swagger UI's stylesheet were `unmatched`,
    the label of a path no route serves: the HEAD's route was found on a copy of the request, and
    the fallback matched HEAD against GET routes and the asset after the mount had moved its path."""
    pg.execute("INSERT INTO ops.meters (meter_id, segment, region) VALUES ('M1', 'r', 'n')")
    pg.commit()
    auth = {"Authorization": f"Bearer {issue_token(SECRET, 'tester', ['read'], timedelta(minutes=5))}"}
    assert client.head("/v1/meters/M1/readings", headers=auth).status_code == 200
    assert client.head("/v1/meters/M1/readings").status_code == 401
    assert client.head("/healthz").status_code == 200
    assert client.head("/v1/meter_readings", headers=auth).status_code == 405  # POST only
    assert client.get("/docs/assets/swagger-ui.css").status_code == 200
    assert client.head("/docs/assets/swagger-ui-bundle.js").status_code == 200
    assert client.get("/docs/assets/no-such-file.js").status_code == 404
    assert client.head("/no/such/path").status_code == 404

    scraped = samples(client.get("/metrics").text)
    assert scraped[requests("HEAD", READINGS, 200)] == 1
    assert scraped[requests("HEAD", READINGS, 401)] == 1
    assert scraped[requests("HEAD", "/healthz", 200)] == 1
    assert scraped[requests("HEAD", "/v1/{source}", 405)] == 1
    assert scraped[requests("GET", DOCS_ASSETS, 200)] == 1
    assert scraped[requests("HEAD", DOCS_ASSETS, 200)] == 1
    assert scraped[requests("GET", DOCS_ASSETS, 404)] == 1
    assert scraped[requests("HEAD", UNMATCHED, 404)] == 1
    routes = {dict(labels)["route"] for name, labels in scraped if name == "metrify_api_requests_total"}
    assert routes == {READINGS, "/healthz", "/v1/{source}", DOCS_ASSETS, UNMATCHED}


def test_a_head_refused_before_routing_is_labelled_with_the_get_route(
    pg_resource: PostgresResource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 429 is answered before the router (and before HEAD is run as a GET), so the middleware
    matches the route itself: it searched the app's own routes alone, not those of the routers it
    includes (every /v1 route), and matched HEAD against routes that declare GET alone, so both were
    `unmatched`."""
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    settings = resolve_settings(
        {
            "METRIFY_HOME": str(tmp_path),
            "METRIFY_POSTGRES_URL": pg_resource.get_url(),
            "METRIFY_API_JWT_SECRET": SECRET,
            "METRIFY_API_RATE_LIMIT": "1",
        }
    )
    with TestClient(create_app(settings)) as limited:
        statuses = [limited.head("/v1/consumption/daily").status_code for _ in range(3)]
        statuses.append(limited.get("/v1/meters/M1/readings").status_code)
        assert statuses[-2:] == [429, 429], statuses
        scraped = samples(limited.get("/metrics").text)
    assert scraped[requests("HEAD", "/v1/consumption/daily", 429)] >= 1
    assert scraped[requests("GET", READINGS, 429)] == 1  # a GET too: included routers were not searched


def test_the_request_metrics_have_no_created_series(
    pg: psycopg.Connection, pg_resource: PostgresResource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """prometheus_client's `_created` samples (one per counter and histogram series) are left out:
    they doubled the API's series. Its default (on) first, as a fresh process has it."""
    from prometheus_client import enable_created_metrics

    enable_created_metrics()
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    settings = resolve_settings(
        {
            "METRIFY_HOME": str(tmp_path),
            "METRIFY_POSTGRES_URL": pg_resource.get_url(),
            "METRIFY_API_JWT_SECRET": SECRET,
        }
    )
    with TestClient(create_app(settings)) as client:
        client.get("/healthz")
        for scope in ("api", "all"):
            text = client.get("/metrics", params={"scope": scope}).text
            names = {name for name, _ in samples(text)}
            assert requests("GET", "/healthz", 200) in samples(text), scope
            assert "metrify_api_request_duration_seconds_count" in names, scope
            assert not [n for n in names if n.endswith("_created")], scope
            assert "_created" not in text, scope


@pytest.mark.postgres
def test_the_cache_gauge_says_whether_redis_answers(
    pg: psycopg.Connection,
    pg_resource: PostgresResource,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    redis_server_factory: Callable[[], RedisServer],
) -> None:
    """A Redis of this test's own, stopped while the API runs: `metrify_api_cache_up` goes from 1 to
    0 (the API keeps answering from PostgreSQL, so no request metric shows the outage)."""
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    redis = redis_server_factory()
    env = {
        "METRIFY_HOME": str(tmp_path),
        "METRIFY_POSTGRES_URL": pg_resource.get_url(),
        "METRIFY_API_JWT_SECRET": SECRET,
    }
    up = ("metrify_api_cache_up", frozenset())
    with TestClient(create_app(resolve_settings({**env, "REDIS_URL": redis.url}))) as api:
        assert samples(api.get("/metrics", params={"scope": "api"}).text)[up] == 1.0
        redis.stop()
        assert samples(api.get("/metrics", params={"scope": "api"}).text)[up] == 0.0
        assert api.get("/readyz").json()["status"] == "degraded"


def test_without_a_cache_there_is_no_cache_gauge(client: TestClient) -> None:
    assert "metrify_api_cache_up" not in client.get("/metrics", params={"scope": "api"}).text
