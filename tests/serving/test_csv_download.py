"""A CSV asked for without `limit` or `cursor` is the whole result, streamed from one snapshot, never a
silent first page; over METRIFY_API_CSV_MAX_ROWS it is refused before any row is sent. On the real
API over a simulated home (tests/serving/test_api.py's fixtures), PostgreSQL and Redis."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg
import pytest
from fastapi import Request
from fastapi.testclient import TestClient
from psycopg import pq

from metrify_assets.env import Settings
from metrify_assets.resources.build import postgres_resource
from metrify_assets.serving import output
from metrify_assets.serving.app import create_app
from metrify_assets.serving.db import connection
from metrify_assets.serving.pagination import DEFAULT_PAGE_SIZE
from metrify_assets.serving.routes import data
from tests.serving.test_api import a_meter, client, home, query, settings, settings_for, token
from tests.serving.uvicorn_thread import serve

__all__ = ["client", "home", "settings"]  # the fixtures this module shares with test_api.py
pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.e2e]
HOURLY = "/v1/consumption/hourly"
EXTRA_HOURS = 1_500  # beside the home's 12 meters x 48 hours: more rows than one page of 1,000


@pytest.fixture(scope="module")
def big_mart(settings: Settings) -> Iterator[int]:
    """fct_consumption_hourly with EXTRA_HOURS more rows (three made-up meters in 2030): its row count."""
    with postgres_resource(settings).connect() as conn:
        conn.execute(
            "CREATE TEMP TABLE extra AS SELECT h.*, g AS n FROM "
            "(SELECT * FROM marts.fct_consumption_hourly LIMIT 1) AS h CROSS JOIN generate_series(1, %s) AS g",
            (EXTRA_HOURS,),
        )
        conn.execute(
            "UPDATE extra SET meter_id = 'CSV-' || (n % 3), "
            "hour_start_utc = timestamp '2030-01-01' + n * interval '1 hour'"
        )
        conn.execute("ALTER TABLE extra DROP COLUMN n")
        conn.execute("INSERT INTO marts.fct_consumption_hourly SELECT * FROM extra")
        conn.commit()
        try:
            yield int(conn.execute("SELECT count(*) FROM marts.fct_consumption_hourly").fetchone()[0])
        finally:
            conn.execute("DELETE FROM marts.fct_consumption_hourly WHERE meter_id LIKE 'CSV-%'")
            conn.commit()


def hourly_keys(settings: Settings, where: str = "true") -> list[tuple[str, str]]:
    rows = query(
        settings,
        f"SELECT hour_start_utc, meter_id FROM marts.fct_consumption_hourly WHERE {where} "
        "ORDER BY hour_start_utc, meter_id",
    )
    return [(f"{start.isoformat()}+00:00", meter) for start, meter in rows]


def csv_keys(text: str) -> list[tuple[str, str]]:
    return [(r["hour_start_utc"], r["meter_id"]) for r in csv.DictReader(io.StringIO(text))]


def test_a_csv_without_limit_is_every_row_of_the_query(
    client: TestClient, settings: Settings, big_mart: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The trial's download: `?format=csv` of a mart of more rows than a page held 1,000 rows and a
    header, the rest only behind X-Next-Cursor. Now every row, in key order, each once, read in pages
    of 400 (DOWNLOAD_PAGE_ROWS made small: six pages here), X-Row-Count saying how many."""
    monkeypatch.setattr(output, "DOWNLOAD_PAGE_ROWS", 400)
    assert big_mart > DEFAULT_PAGE_SIZE
    response = client.get(HOURLY, headers=token("read"), params={"format": "csv"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert "x-next-cursor" not in response.headers and "link" not in response.headers
    assert response.headers["x-row-count"] == str(big_mart)
    assert len(response.text.splitlines()) == big_mart + 1  # was 1,001
    assert csv_keys(response.text) == hourly_keys(settings)
    # Accept: text/csv is the same download, and filters apply to it.
    one_meter = client.get(
        HOURLY, headers={**token("read"), "Accept": "text/csv"}, params={"meter_id": "CSV-1"}
    )
    assert csv_keys(one_meter.text) == hourly_keys(settings, "meter_id = 'CSV-1'")
    assert one_meter.headers["x-row-count"] == str(EXTRA_HOURS // 3)


@contextmanager
def mart_statements(client: TestClient, trace: Path) -> Iterator[Callable[[], int]]:
    """Counts the statements that reach PostgreSQL about the hourly mart: each request's connection
    (from the API's pool, as `connection` takes it) writes libpq's trace of what it sends to `trace`."""
    fd = os.open(trace, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def traced(request: Request) -> Iterator[psycopg.Connection]:
        with request.app.state.pool.connection() as conn:
            conn.pgconn.trace(fd)
            conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
            try:
                yield conn
            finally:
                conn.pgconn.untrace()

    def sent() -> int:
        lines = trace.read_text().splitlines()
        return sum(1 for line in lines if line.startswith("F\t") and "fct_consumption_hourly" in line)

    client.app.dependency_overrides[connection] = traced  # type: ignore[attr-defined]
    try:
        yield sent
    finally:
        client.app.dependency_overrides.clear()  # type: ignore[attr-defined]
        os.close(fd)


def test_head_of_a_download_counts_the_rows_but_reads_none(
    client: TestClient, big_mart: int, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The trial's HEAD of `?format=csv` (an uptime check, a client asking the size first) ran the
    whole export, every page queried and written out, to answer headers alone. Now it answers the
    GET's headers (X-Row-Count, the CSV type, no Content-Length) from the count alone: by libpq's
    trace, the GET sends the count and one query per page of 400 (DOWNLOAD_PAGE_ROWS made small),
    the HEAD the count only (it sent as many as the GET)."""
    monkeypatch.setattr(output, "DOWNLOAD_PAGE_ROWS", 400)
    pages = -(-big_mart // 400)
    params = {"format": "csv"}
    with mart_statements(client, tmp_path / "libpq.trace") as sent:
        get = client.get(HOURLY, headers=token("read"), params=params)
        by_get = sent()
        head = client.head(HOURLY, headers=token("read"), params=params)
        by_head = sent() - by_get
    assert get.status_code == 200 and len(get.text.splitlines()) == big_mart + 1
    assert by_get == 1 + pages > 2
    assert by_head == 1
    assert (head.status_code, head.content) == (200, b"")
    assert dict(head.headers) == dict(get.headers)
    assert head.headers["x-row-count"] == str(big_mart) and "content-length" not in head.headers


def test_paged_csv_and_json_keep_their_pages(client: TestClient, big_mart: int) -> None:
    """With `limit` or `cursor` a CSV is a page, as JSON always is: the caller pages by X-Next-Cursor."""
    headers = token("read")
    page = client.get(HOURLY, headers=headers, params={"format": "csv", "limit": 10})
    assert len(page.text.splitlines()) == 11 and page.headers["x-next-cursor"]
    assert "x-row-count" not in page.headers
    following = client.get(
        HOURLY, headers=headers, params={"format": "csv", "cursor": page.headers["x-next-cursor"]}
    )
    assert len(following.text.splitlines()) == DEFAULT_PAGE_SIZE + 1 and following.headers["x-next-cursor"]
    body = client.get(HOURLY, headers=headers).json()
    assert body["count"] == DEFAULT_PAGE_SIZE and body["next_cursor"]


def test_a_meters_readings_download_whole_and_404_for_an_unknown_meter(
    client: TestClient, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(output, "DOWNLOAD_PAGE_ROWS", 50)
    meter = a_meter(settings)
    headers = token("read")
    whole = client.get(f"/v1/meters/{meter}/readings", headers=headers, params={"limit": 10_000}).json()
    download = client.get(f"/v1/meters/{meter}/readings", headers=headers, params={"format": "csv"})
    assert download.status_code == 200
    rows = list(csv.DictReader(io.StringIO(download.text)))
    assert len(rows) > 50 and download.headers["x-row-count"] == str(len(rows))
    assert [r["reading_start"] for r in rows] == [r["reading_start"] for r in whole["data"]]
    unknown = client.get("/v1/meters/NO-SUCH-METER/readings", headers=headers, params={"format": "csv"})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"
    head = client.head("/v1/meters/NO-SUCH-METER/readings", headers=headers, params={"format": "csv"})
    assert head.status_code == 404 and head.headers["content-length"] == unknown.headers["content-length"]


def test_a_download_over_the_bound_is_refused_before_any_row(
    home: Path, redis_server: str, settings: Settings, big_mart: int
) -> None:
    """METRIFY_API_CSV_MAX_ROWS bounds a download: a result over it is a 422 `too_many_rows` naming
    the bound (no partial file); one of exactly the bound is whole; a page is still a page."""
    bound = EXTRA_HOURS // 3  # CSV-1's rows
    bounded = settings_for(home, redis_server, METRIFY_API_CSV_MAX_ROWS=str(bound))
    with TestClient(create_app(bounded)) as bounded_client:
        headers = token("read")
        refused = bounded_client.get(HOURLY, headers=headers, params={"format": "csv"})
        assert refused.status_code == 422, refused.text
        error = refused.json()["error"]
        assert error["code"] == "too_many_rows" and error["details"] == {"max_rows": bound}
        assert f"more than {bound:,} rows" in error["message"]
        head = bounded_client.head(HOURLY, headers=headers, params={"format": "csv"})
        assert (head.status_code, head.content) == (422, b"")  # as the GET, from the count
        exact = bounded_client.get(HOURLY, headers=headers, params={"format": "csv", "meter_id": "CSV-1"})
        assert exact.status_code == 200 and len(exact.text.splitlines()) == bound + 1
        page = bounded_client.get(HOURLY, headers=headers, params={"format": "csv", "limit": 5})
        assert page.status_code == 200 and len(page.text.splitlines()) == 6


def test_a_download_is_streamed_over_http(settings: Settings, big_mart: int) -> None:
    """Over real HTTP the file is sent chunked as its pages are read (no Content-Length: not built
    whole in memory first), and arrives whole."""
    with (
        serve(create_app(settings)) as base,
        httpx.Client(base_url=base, timeout=60) as http,
        http.stream("GET", HOURLY, headers=token("read"), params={"format": "csv"}) as response,
    ):
        assert response.status_code == 200
        assert "content-length" not in response.headers
        assert response.headers["transfer-encoding"] == "chunked"
        lines = sum(1 for _ in response.iter_lines())
        head = http.head(HOURLY, headers=token("read"), params={"format": "csv"})
    assert lines == big_mart + 1
    assert (head.status_code, head.content, head.headers["x-row-count"]) == (200, b"", str(big_mart))
    assert head.headers["content-type"] == response.headers["content-type"]


def test_a_meter_limited_token_downloads_its_meters_rows_only(client: TestClient, big_mart: int) -> None:
    """A token with a `meters` claim gets a whole file of its meters' rows, counted as such."""
    response = client.get(HOURLY, headers=token("read", meters=["CSV-2"]), params={"format": "csv"})
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert {r["meter_id"] for r in rows} == {"CSV-2"}
    assert len(rows) == EXTRA_HOURS // 3 and response.headers["x-row-count"] == str(len(rows))
    refused = client.get(
        "/v1/consumption/regions", headers=token("read", meters=["CSV-2"]), params={"format": "csv"}
    )
    assert refused.status_code == 403


def test_a_download_that_does_not_add_up_breaks_off_rather_than_ending_short(
    settings: Settings, big_mart: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Within one snapshot the rows always add up to the count; were they ever short (here the count
    is made one too many), the transfer breaks off without its last chunk: over HTTP the client's
    read fails instead of a short file looking whole."""
    counted = data.count_rows
    monkeypatch.setattr(data, "count_rows", lambda *a, **k: counted(*a, **k) + 1)
    with (
        serve(create_app(settings)) as base,
        httpx.Client(base_url=base, timeout=60) as http,
        http.stream(
            "GET", HOURLY, headers=token("read"), params={"format": "csv", "meter_id": "CSV-0"}
        ) as response,
    ):
        assert response.status_code == 200 and response.headers["x-row-count"] == str(EXTRA_HOURS // 3 + 1)
        with pytest.raises(httpx.RemoteProtocolError):
            response.read()
