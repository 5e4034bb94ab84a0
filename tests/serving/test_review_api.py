"""GET /v1/review/items?meter_id=: one meter's flagged readings, with the filter `metrify review list
--meter` uses (quality/review.py's `ITEM_FILTER`), on the real app over the session's PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from metrify_assets.env import resolve_settings
from metrify_assets.quality import review
from metrify_assets.resources import PostgresResource
from metrify_assets.serving.app import create_app
from metrify_assets.serving.auth import issue_token

pytestmark = [pytest.mark.postgres]
SECRET = "test-secret-of-at-least-32-bytes-for-hs256"


def token(*scopes: str, meters: list[str] | None = None) -> dict[str, str]:
    signed = issue_token(SECRET, "tester", list(scopes), timedelta(minutes=10), meters=meters)
    return {"Authorization": f"Bearer {signed}"}


@pytest.fixture(scope="module")
def api(pg_resource: PostgresResource, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    env = {
        "METRIFY_HOME": str(tmp_path_factory.mktemp("api-review")),
        "METRIFY_POSTGRES_URL": pg_resource.get_url(),
        "METRIFY_API_JWT_SECRET": SECRET,
    }
    with TestClient(create_app(resolve_settings(env))) as client:
        yield client


@pytest.fixture
def queued(pg: psycopg.Connection) -> psycopg.Connection:
    """Items of meters M1, M2 and M10 (M1 a prefix of M10) and of a grid node named M1 (its key starts
    with `M1|` too, but it is no meter's reading), ties on `flagged_at`, pending and approved."""
    flagged = datetime(2026, 3, 1, tzinfo=UTC)
    for index in range(15):
        grid = index % 5 == 4
        pg.execute(
            "INSERT INTO ops.review_queue (batch_id, record_index, source, record_key, reasons, status, "
            "flagged_at) VALUES (%s, %s, %s, %s, 'energy_spike', %s, %s)",
            (
                f"b{index % 2}",
                index,
                "grid_status" if grid else "meter_readings",
                f"{'M1' if grid else ('M1', 'M2', 'M10')[index % 3]}|2026-03-01T{index:02d}:00:00+00:00",
                ("pending", "approved")[index % 2],
                flagged + timedelta(minutes=index % 4),
            ),
        )
    pg.commit()
    return pg


def error_of(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code
    return error


def pages(api: TestClient, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    """Every page of the list, following `next_cursor`."""
    listed: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, "cursor": cursor} if cursor else params
        response = api.get("/v1/review/items", params=query, headers=headers)
        assert response.status_code == 200, response.text
        listed += response.json()["data"]
        cursor = response.json()["next_cursor"]
        if cursor is None:
            return listed


def test_meter_id_lists_that_meters_readings_as_the_cli_does(
    api: TestClient, queued: psycopg.Connection
) -> None:
    headers = token("review")
    for status in ("all", "pending"):
        for meter in ("M1", "M2", "M10", "M9"):
            listed = pages(api, headers, status=status, meter_id=meter, limit=2)
            wanted = None if status == "all" else status
            items = review.list_items(queued, wanted, meter=meter, limit=1000)
            assert [(i["batch_id"], i["record_index"]) for i in listed] == [
                (i.batch_id, i.record_index) for i in items
            ]
            assert len(items) == review.count_items(queued, wanted, meter=meter)
            assert all(i["source"] == "meter_readings" for i in listed)
            assert all(i["record_key"].split("|")[0] == meter for i in listed)
    every_m1 = pages(api, headers, status="all", meter_id="M1")
    assert len(every_m1) == 4  # not M10's readings, nor the grid node M1's samples
    grid = api.get("/v1/review/items", params={"source": "grid_status", "meter_id": "M1"}, headers=headers)
    assert grid.status_code == 200 and grid.json()["data"] == []


def test_a_cursor_of_one_meter_is_refused_for_another(api: TestClient, queued: psycopg.Connection) -> None:
    headers = token("review")
    first = api.get(
        "/v1/review/items", params={"status": "all", "meter_id": "M1", "limit": 1}, headers=headers
    ).json()
    assert first["next_cursor"]
    same = {"status": "all", "meter_id": "M1", "cursor": first["next_cursor"]}
    assert api.get("/v1/review/items", params=same, headers=headers).status_code == 200
    for params in ({"status": "all", "meter_id": "M2"}, {"status": "all"}):
        moved = api.get(
            "/v1/review/items", params={**params, "cursor": first["next_cursor"]}, headers=headers
        )
        error = error_of(moved, 400, "bad_cursor")
        assert "cursor was issued for other filters (meter_id=M1&status=all)" in error["message"]
    # and a cursor of the whole list does not continue one meter's
    whole = api.get("/v1/review/items", params={"status": "all", "limit": 1}, headers=headers).json()
    moved = api.get(
        "/v1/review/items",
        params={"status": "all", "meter_id": "M1", "cursor": whole["next_cursor"]},
        headers=headers,
    )
    error_of(moved, 400, "bad_cursor")


def test_a_nul_in_meter_id_is_a_422_naming_it(api: TestClient) -> None:
    response = api.get("/v1/review/items?meter_id=M1%00", headers=token("review"))
    (detail,) = error_of(response, 422, "invalid_parameter")["details"]
    assert (detail["field"], detail["type"]) == ("query.meter_id", "nul_character")


def test_a_meter_limited_token_asks_only_for_its_meters(api: TestClient, queued: psycopg.Connection) -> None:
    limited = token("review", meters=["M2"])
    error_of(api.get("/v1/review/items", params={"meter_id": "M1"}, headers=limited), 403, "meter_forbidden")
    mine = pages(api, limited, status="all", meter_id="M2")
    assert mine == pages(api, limited, status="all")  # its meters' readings either way
    assert mine and {i["record_key"].split("|")[0] for i in mine} == {"M2"}


def test_openapi_documents_meter_id(api: TestClient) -> None:
    operation = api.get("/openapi.json").json()["paths"]["/v1/review/items"]["get"]
    (param,) = [p for p in operation["parameters"] if p["name"] == "meter_id"]
    assert param["in"] == "query" and "--meter" in param["description"]
