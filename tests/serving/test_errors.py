"""The API's error answers, on the real app over the session's PostgreSQL (no marts: every case here is
answered before a mart is read): non-finite numbers echoed as JSON, 404 against 405, one shape for
every 422 detail, 415 for a body that is not JSON, an unknown meter, `from` after `to`, and the review
queue's `status=all`. Found by a new user's trial of the API, each once a 500, a wrong status or a
second shape."""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from metrify_assets.env import resolve_settings
from metrify_assets.quality import review
from metrify_assets.resources import PostgresResource
from metrify_assets.serving.app import create_app
from metrify_assets.serving.auth import issue_token
from metrify_assets.serving.datasets import DATASETS
from metrify_assets.serving.errors import MAX_JSON_DEPTH, MAX_VALUE_CHARS, echo, error_response, json_safe
from metrify_assets.serving.pagination import cursor_scope, encode_cursor
from metrify_assets.serving.routes import data
from metrify_assets.storage.known import Kind, known

pytestmark = [pytest.mark.postgres]
SECRET = "test-secret-of-at-least-32-bytes-for-hs256"
READING = {
    "meter_id": "MTR-000001",
    "reading_start": "2026-03-29T10:15:00+01:00",
    "interval_minutes": 15,
    "energy_kwh": 0.42,
}
DETAIL_KEYS = {"field", "message", "type", "value"}


def token(*scopes: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(SECRET, 'tester', list(scopes), timedelta(minutes=10))}"}


def strict_json(text: str) -> Any:
    """The body as strict JSON: NaN or Infinity in it fails (what a JSON client other than Python's does)."""

    def refuse(constant: str) -> None:
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def error_of(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = strict_json(response.text)["error"]
    assert (error["status"], error["code"]) == (status, code)
    return error


@pytest.fixture(scope="module")
def api(pg_resource: PostgresResource, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    home = tmp_path_factory.mktemp("api-errors")
    env = {
        "METRIFY_HOME": str(home),
        "METRIFY_POSTGRES_URL": pg_resource.get_url(),
        "METRIFY_API_JWT_SECRET": SECRET,
    }
    with TestClient(create_app(resolve_settings(env))) as client:
        yield client


def api_batches(pg: psycopg.Connection) -> int:
    row = pg.execute("SELECT count(*) FROM ops.api_batches").fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize(
    ("literal", "echoed"), [("1e999", "Infinity"), ("-Infinity", "-Infinity"), ("NaN", "NaN")]
)
def test_a_non_finite_number_is_a_422_that_echoes_it_as_a_string(
    api: TestClient, pg: psycopg.Connection, literal: str, echoed: str
) -> None:
    """It was a 500: the 422's echo of the value could not be serialised."""
    single = json.dumps(READING).replace("0.42", literal)
    batch = json.dumps({"records": [READING, READING]}).replace("0.42}]", f"{literal}}}]")
    for body, field in ((single, "body.energy_kwh"), (batch, "body.records.1.energy_kwh")):
        response = api.post(
            "/v1/meter_readings",
            content=body,
            headers={**token("ingest"), "Content-Type": "application/json"},
        )
        (detail,) = error_of(response, 422, "invalid_body")["details"]
        assert detail == {
            "field": field,
            "message": f"expected number, got {echoed}",
            "type": "type",
            "value": echoed,
        }
    assert api_batches(pg) == 0  # nothing written
    # A body FastAPI checks itself (a decision's note must be text) echoes it the same way.
    decided = api.post(
        "/v1/review/items/b/0/approve",
        content=f'{{"note": {literal}}}',
        headers={**token("review"), "Content-Type": "application/json"},
    )
    (detail,) = error_of(decided, 422, "validation_error")["details"]
    assert (detail["field"], detail["value"]) == ("body.note", echoed)


def test_error_details_are_json_whatever_they_hold() -> None:
    class Opaque:  # no __dict__ and not iterable: no encoder knows it, so its str
        __slots__ = ()

        def __str__(self) -> str:
            return "opaque"

    details = {
        "floats": [float("inf"), float("-inf"), float("nan"), 1.5],
        "bytes": b"\xffab",
        "set": {3},
        "when": datetime(2026, 3, 29, tzinfo=UTC),
        "day": date(2026, 3, 29),
        "object": Opaque(),
        7: ("tuple",),
        "\ud800key": "lone \udc00",
        "big": 10**30,
        "deep": json.loads(deep_list(900)),
    }
    capped = json.loads(deep_list(MAX_JSON_DEPTH - 1).replace("1", '"..."'))  # "..." at the depth cap
    body = strict_json(error_response(422, "validation_error", "m", details).body.decode())
    assert body["error"]["details"] == {
        "floats": ["Infinity", "-Infinity", "NaN", 1.5],
        "bytes": "\ufffdab",
        "set": [3],
        "when": "2026-03-29T00:00:00+00:00",
        "day": "2026-03-29",
        "object": "opaque",
        "7": ["tuple"],
        "\\ud800key": "lone \\udc00",
        "big": 10**30,
        "deep": capped,
    }
    assert json_safe(None) is None and json_safe(True) is True
    # A 422 echoes only the start of a long value, whatever its shape, and walks no further.
    assert echo(json.loads(deep_list(900))) == [capped]
    assert echo(list(range(10**6))) == json.dumps(list(range(100)))[:MAX_VALUE_CHARS] + "..."
    assert echo({"a": [1, "\ud800"]}) == {"a": [1, "\\ud800"]}


def test_unknown_paths_are_404_and_a_known_path_with_another_method_is_405(api: TestClient) -> None:
    """`GET /v1/nonexistent` was 405: the ingestion route `/v1/{source}` matched any name."""
    headers = token("admin")
    for method, path in (
        ("GET", "/v1/nonexistent"),
        ("DELETE", "/v1/nonexistent"),
        ("POST", "/v1/gas_readings"),
        ("GET", "/v1/batches"),
        ("PUT", "/v1/nonexistent"),
    ):
        error_of(api.request(method, path, headers=headers), 404, "not_found")
    for method, path, allowed in (
        ("GET", "/v1/meter_readings", "POST"),
        ("PUT", "/v1/grid_status", "POST"),
        ("POST", "/v1/meters/M1/readings", "GET, HEAD"),
    ):
        response = api.request(method, path, headers=headers)
        error_of(response, 405, "method_not_allowed")
        assert response.headers["allow"] == allowed


def test_every_422_detail_has_one_shape(api: TestClient) -> None:
    """validation_error, invalid_parameter and invalid_body each had their own keys."""
    read, json_type = token("read"), {"Content-Type": "application/json"}
    cases = [
        (
            api.get("/v1/consumption/daily", params={"limit": 0}, headers=read),
            "validation_error",
            {"field": "query.limit", "type": "greater_than_equal", "value": "0"},
        ),
        (
            api.post("/v1/review/items/b/0/reject", json={}, headers=token("review")),
            "validation_error",
            {"field": "body.note", "type": "missing", "value": None},
        ),
        (
            api.post("/v1/meter_readings", content="{bad", headers={**token("ingest"), **json_type}),
            "validation_error",
            {"field": "body", "type": "json_invalid", "value": None},
        ),
        (
            api.get("/v1/consumption/hourly", params={"from": "2026-03-28T25:00"}, headers=read),
            "invalid_parameter",
            {"field": "query.from", "type": "datetime_parsing", "value": "2026-03-28T25:00"},
        ),
        (  # in year 0 once in UTC, which the filter compares in: was an OverflowError, a 500
            api.get("/v1/grid/nodes/N1/states", params={"from": "0001-01-01T00:00+01:00"}, headers=read),
            "invalid_parameter",
            {"field": "query.from", "type": "datetime_parsing", "value": "0001-01-01T00:00+01:00"},
        ),
        (
            api.get("/v1/forecasts/load", params={"selected": "maybe"}, headers=read),
            "invalid_parameter",
            {"field": "query.selected", "type": "bool_parsing", "value": "maybe"},
        ),
        (
            api.post(
                "/v1/meter_readings",
                json={"records": [{**READING, "energy_kwh": "x" * 1000}]},
                headers=token("ingest"),
            ),
            "invalid_body",
            {"field": "body.records.0.energy_kwh", "type": "type", "value": "x" * MAX_VALUE_CHARS + "..."},
        ),
    ]
    for response, code, expected in cases:
        (detail,) = error_of(response, 422, code)["details"]
        assert set(detail) == DETAIL_KEYS, detail
        assert {k: detail[k] for k in expected} == expected, detail
        assert isinstance(detail["message"], str) and detail["message"]


def test_a_body_that_is_not_json_is_415(api: TestClient, pg: psycopg.Connection) -> None:
    """It was a 422 'Input should be a valid dictionary'. JSON with a charset still passes."""
    body = json.dumps(READING)
    for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
        headers = {**token("ingest", "review")}
        if content_type:
            headers["Content-Type"] = content_type
        for path in ("/v1/meter_readings", "/v1/review/items/b/0/approve"):
            error = error_of(api.post(path, content=body, headers=headers), 415, "unsupported_media_type")
            assert error["details"] == {"content_type": content_type, "accepted": ["application/json"]}
    assert api_batches(pg) == 0
    # Authentication comes first: no token is 401 whatever the body.
    unauthenticated = api.post("/v1/meter_readings", content=body, headers={"Content-Type": "text/plain"})
    error_of(unauthenticated, 401, "missing_token")
    accepted = api.post(
        "/v1/meter_readings",
        content=body,
        headers={**token("ingest"), "Content-Type": "application/json; charset=utf-8"},
    )
    assert accepted.status_code == 202, accepted.text
    assert api_batches(pg) == 1


def test_a_meter_never_seen_is_404_on_readings_and_latest(api: TestClient, pg: psycopg.Connection) -> None:
    """Readings answered 200 [] for a meter the store never saw while latest answered 404."""
    start = datetime(2026, 3, 28, 10, 0, tzinfo=UTC)
    pg.execute(
        "INSERT INTO ops.meter_readings (meter_id, reading_start, interval_minutes, energy_kwh, "
        "record_version, batch_id) VALUES ('MTR-READ', %s, 15, 0.3, 1, 'b1')",
        (start,),
    )
    pg.execute(
        "INSERT INTO ops.meters (meter_id, segment, region) VALUES ('MTR-REG', 'residential', 'north')"
    )
    pg.commit()
    read = token("read")
    unknown = "no meter 'MTR-NOPE': not registered, no reading or VEE interval stored"
    for path in ("/v1/meters/MTR-NOPE/readings", "/v1/meters/MTR-NOPE/latest"):
        assert error_of(api.get(path, headers=read), 404, "not_found")["message"] == unknown
    rows = api.get("/v1/meters/MTR-READ/readings", headers=read).json()
    assert [r["energy_kwh"] for r in rows["data"]] == [0.3]
    later = api.get("/v1/meters/MTR-READ/readings", params={"from": "2026-03-29T00:00:00Z"}, headers=read)
    assert later.status_code == 200 and later.json()["data"] == []  # known meter, nothing in range
    registered = api.get("/v1/meters/MTR-REG/readings", headers=read)
    assert registered.status_code == 200 and registered.json()["data"] == []  # registered, no reading yet
    no_reading = error_of(api.get("/v1/meters/MTR-REG/latest", headers=read), 404, "not_found")
    assert no_reading["message"] == "meter 'MTR-REG' is known but has no reading stored yet"
    assert api.get("/v1/meters/MTR-READ/latest", headers=read).json()["data"]["energy_kwh"] == 0.3


def test_a_grid_node_or_station_never_seen_is_404_and_a_known_one_an_empty_page(
    api: TestClient, pg: psycopg.Connection
) -> None:
    """Their measurements and observations answered 200 with an empty page for any id, where an
    unknown meter was 404. A node is known by its state events too (the grid analysis' tables)."""
    pg.execute(
        "INSERT INTO ops.grid_status (grid_node_id, measured_at, frequency_hz, voltage_v, load_mw, "
        "record_version, batch_id) VALUES ('NODE-A', '2026-03-28T10:00:00Z', 50.0, 230.0, 10.0, 1, 'b1')"
    )
    pg.execute(
        "INSERT INTO ops.grid_state_events (grid_node_id, started_at, state, rule, area, start_day, "
        "peak_deviation_hz) VALUES ('NODE-EV', '2026-03-28T10:00:00Z', 'alert', 'r', 'CE', '2026-03-28', 0.3)"
    )
    pg.execute(
        "INSERT INTO ops.weather_observations (station_id, observed_at, temperature_c, humidity_pct, "
        "pressure_hpa, wind_speed_ms, precipitation_mm, record_version, batch_id) "
        "VALUES ('ST-A', '2026-03-28T10:00:00Z', 8.0, 80.0, 1010.0, 3.0, 0.0, 1, 'b1')"
    )
    pg.commit()
    read = token("read")
    for path, message in (
        (
            "/v1/grid/nodes/NODE-NOPE/status",
            "no grid node 'NODE-NOPE': no measurement, stability figure or state event stored",
        ),
        (
            "/v1/weather/stations/ST-NOPE/observations",
            "no weather station 'ST-NOPE': no observation or classified hour stored",
        ),
    ):
        assert error_of(api.get(path, headers=read), 404, "not_found")["message"] == message
        assert api.head(path, headers=read).status_code == 404
    later = {"from": "2026-03-29T00:00:00Z"}
    for path, rows in (
        ("/v1/grid/nodes/NODE-A/status", 1),
        ("/v1/weather/stations/ST-A/observations", 1),
        ("/v1/grid/nodes/NODE-EV/status", 0),  # known by its event, no measurement
    ):
        response = api.get(path, headers=read)
        assert response.status_code == 200 and response.json()["count"] == rows, (path, response.text)
        empty = api.get(path, params=later, headers=read)
        assert empty.status_code == 200 and empty.json()["data"] == [], path


def test_an_id_is_known_from_any_of_its_tables_that_exist(pg: psycopg.Connection) -> None:
    """A mart keeps a station's hours after retention emptied its `ops` rows, and is absent until dbt
    has built it: a table not there is skipped, a trace in any later one counts."""
    kind = Kind(
        "station", "station_id", ("ops.weather_observations", "known_absent.t", "known_test.history"), "none"
    )
    try:
        assert not known(pg, kind, "ST-OLD")
        pg.execute("CREATE SCHEMA known_test")
        pg.execute("CREATE TABLE known_test.history (station_id text)")
        pg.execute("INSERT INTO known_test.history VALUES ('ST-OLD')")
        assert known(pg, kind, "ST-OLD")
        assert not known(pg, kind, "ST-NEW")
    finally:
        pg.rollback()  # the schema was never committed


def test_from_after_to_is_a_422_naming_both(api: TestClient, pg: psycopg.Connection) -> None:
    """It was a 200 with an empty list; `from` equal to `to` stays the empty range."""
    pg.execute(
        "INSERT INTO ops.meter_readings (meter_id, reading_start, interval_minutes, energy_kwh, "
        "record_version, batch_id) VALUES ('MTR-READ', '2026-03-28T10:00:00Z', 15, 0.3, 1, 'b1')"
    )
    pg.commit()
    read = token("read")
    for path, after, before in (
        ("/v1/consumption/daily", "2026-03-29", "2026-03-28"),
        ("/v1/meters/MTR-READ/readings", "2026-03-29T00:00:00Z", "2026-03-28T00:00:00Z"),
    ):
        error = error_of(
            api.get(path, params={"from": after, "to": before}, headers=read), 422, "invalid_parameter"
        )
        assert [d["field"] for d in error["details"]] == ["query.from", "query.to"]
        assert all(set(d) == DETAIL_KEYS and d["type"] == "range" for d in error["details"])
        assert "from" in error["message"] and "to" in error["message"]
    same = "2026-03-28T10:00:00Z"
    empty = api.get("/v1/meters/MTR-READ/readings", params={"from": same, "to": same}, headers=read)
    assert empty.status_code == 200 and empty.json()["data"] == []


def test_utc_bounds_with_local_days_are_a_422_on_every_route_taking_both(api: TestClient) -> None:
    """/v1/consumption/hourly answered `from` with `to_local_date` with the rows of both conditions;
    a meter's readings refused them. Every route whose parameters take both kinds now refuses them
    alike, naming each given parameter, before a mart is read (test_api reads /hourly by local days
    alone); one kind alone is no conflict."""
    spec = api.get("/openapi.json").json()["paths"]
    paths = sorted(
        path
        for path, operations in spec.items()
        if {"from", "to_local_date"}
        <= {p["name"] for op in operations.values() for p in op.get("parameters", ())}
    )
    assert paths == ["/v1/consumption/hourly", "/v1/meters/{meter_id}/readings"]
    read = token("read")
    mixed = {"from": "2026-10-25T00:00:00Z", "to_local_date": "2026-10-26"}
    for path in paths:
        path = path.replace("{meter_id}", "MTR-CONFLICT-1")
        error = error_of(api.get(path, params=mixed, headers=read), 422, "invalid_parameter")
        assert "UTC instants" in error["message"] and "local days" in error["message"], path
        assert [d["field"] for d in error["details"]] == ["query.from", "query.to_local_date"]
        assert all(set(d) == DETAIL_KEYS and d["type"] == "conflict" for d in error["details"])
        assert [d["value"] for d in error["details"]] == list(mixed.values())
    for one_kind in ({"from": mixed["from"]}, {"to_local_date": mixed["to_local_date"]}):
        alone = api.get("/v1/meters/MTR-CONFLICT-1/readings", params=one_kind, headers=read)
        assert alone.status_code == 404  # past the rule: a meter never seen


def test_review_items_take_status_all_as_the_cli_does(api: TestClient, pg: psycopg.Connection) -> None:
    for index, status in enumerate(("pending", "approved", "rejected")):
        pg.execute(
            "INSERT INTO ops.review_queue (batch_id, record_index, source, record_key, reasons, status) "
            "VALUES ('b-review', %s, 'meter_readings', %s, 'energy_spike', %s)",
            (index, f"MTR-1|2026-03-28T0{index}:00:00+00:00", status),
        )
    pg.commit()
    review = token("review")

    def statuses(status: str) -> list[str]:
        response = api.get("/v1/review/items", params={"status": status}, headers=review)
        assert response.status_code == 200, response.text
        return [item["status"] for item in response.json()["data"]]

    assert statuses("all") == ["pending", "approved", "rejected"]
    assert statuses("approved") == ["approved"]
    assert api.get("/v1/review/items", headers=review).json()["count"] == 1  # pending by default
    bad = api.get("/v1/review/items", params={"status": "every"}, headers=review)
    assert error_of(bad, 422, "invalid_parameter")["details"][0]["field"] == "query.status"


def deep_list(levels: int) -> str:
    """A JSON list nested `levels` deep around one number."""
    return "[" * levels + "1" + "]" * levels


def test_a_deeply_nested_or_unencodable_value_is_a_422_not_a_500(api: TestClient) -> None:
    """A 900-deep list (json_safe recursed to its end: RecursionError) and a lone surrogate (the
    answer could not be encoded as UTF-8) each turned a 422 into a 500."""
    headers = {"Content-Type": "application/json"}
    reading = json.dumps(READING)
    for path, auth, body in (
        ("/v1/review/items/b/1/approve", token("review"), f'{{"note": {deep_list(900)}}}'),
        ("/v1/review/items/b/1/approve", token("review"), '{"note": "\\udc00"}'),
        ("/v1/meter_readings", token("ingest"), reading.replace('"MTR-000001"', deep_list(900))),
        ("/v1/meter_readings", token("ingest"), reading.replace("0.42", '"\\ud800"')),
    ):
        response = api.post(path, content=body, headers={**auth, **headers})
        assert response.status_code == 422, (body[:80], response.text[:300])
        for detail in strict_json(response.text)["error"]["details"]:
            assert set(detail) == DETAIL_KEYS and len(json.dumps(detail["value"])) < 2 * MAX_VALUE_CHARS


UNPARSEABLE = {
    "bad syntax": b"{bad",
    "nested past the parser's limit": deep_list(5000).encode(),
    "an integer of 5000 digits": b'{"note": ' + b"9" * 5000 + b"}",
    "invalid UTF-8": b'{"note": "\xff\xfe"}',
}


def test_a_body_that_does_not_parse_is_a_documented_422_or_415(api: TestClient) -> None:
    """FastAPI answered its own 400 'There was an error parsing the body' (details null) to all but
    bad syntax; docs/api.md says a body that is not JSON is 422 validation_error."""
    for path, auth in (
        ("/v1/meter_readings", token("ingest")),
        ("/v1/review/items/b/0/approve", token("review")),
    ):
        for label, body in UNPARSEABLE.items():
            headers = {**auth, "Content-Type": "application/json"}
            (detail,) = error_of(api.post(path, content=body, headers=headers), 422, "validation_error")[
                "details"
            ]
            assert (detail["field"], detail["type"], detail["value"]) == ("body", "json_invalid", None), label
        gzipped = api.post(
            path,
            content=gzip.compress(json.dumps(READING).encode()),
            headers={**auth, "Content-Type": "application/json", "Content-Encoding": "gzip"},
        )
        error = error_of(gzipped, 415, "unsupported_media_type")
        assert error["details"] == {"content_encoding": "gzip", "accepted": ["identity"]}


def test_no_token_is_401_whatever_the_body(api: TestClient) -> None:
    """A JSON body that did not parse was answered (422, 400) before the missing token (401)."""
    bodies = [*UNPARSEABLE.values(), b"", json.dumps(READING).encode()]
    for path in ("/v1/meter_readings", "/v1/review/items/b/0/approve"):
        for content_type in ("application/json", "text/plain"):
            for body in bodies:
                response = api.post(path, content=body, headers={"Content-Type": content_type})
                error_of(response, 401, "missing_token")
        compressed = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
        error_of(api.post(path, content=b"\x1f\x8b", headers=compressed), 401, "missing_token")


def test_a_body_the_pipeline_could_not_read_is_a_422_naming_the_field(
    api: TestClient, pg: psycopg.Connection
) -> None:
    """The schema passed these but orjson could not send them on (an integer beyond 64 bits, an
    extra field nested past 255 levels, a lone surrogate): 500. The decoder would have quarantined
    the surrogate and NaN whole as malformed JSON; now each is a 422 naming the field."""
    before = api_batches(pg)
    reading = json.dumps(READING)[:-1]  # the record without its closing brace, for an extra field
    cases = [
        (reading.replace("0.42", "1" + "0" * 29) + "}", "body.energy_kwh", "int_range"),
        (reading + ', "extra": ' + str(-(2**64)) + "}", "body.extra", "int_range"),
        (
            reading + ', "extra": ' + deep_list(300) + "}",
            "body.extra" + ".0" * (MAX_JSON_DEPTH - 1),
            "maxDepth",
        ),
        (reading.replace("MTR-000001", "\\ud800") + "}", "body.meter_id", "unicode"),
        (reading + ', "\\udc00": 1}', "body.\\udc00", "unicode"),
        (reading + ', "extra": [NaN]}', "body.extra.0", "finite"),
    ]
    for body, field, kind in cases:
        response = api.post(
            "/v1/meter_readings",
            content=body,
            headers={**token("ingest"), "Content-Type": "application/json"},
        )
        (detail,) = error_of(response, 422, "invalid_body")["details"]
        assert (detail["field"], detail["type"]) == (field, kind), body[-80:]
    assert api_batches(pg) == before  # nothing written


def test_a_nul_character_in_a_parameter_is_a_422_naming_it(api: TestClient) -> None:
    """psycopg refuses to send NUL in text (PostgreSQL cannot store it): each of these was a 500."""
    headers = token("read", "review", "ingest")
    cursor = encode_cursor(
        cursor_scope("review_items", {"status": "pending"}), [datetime(2026, 3, 28, tzinfo=UTC), "b\x00", 0]
    )
    for method, path, field in (
        ("GET", "/v1/meters/a%00b/readings", "path.meter_id"),
        ("GET", "/v1/meters/a%00b/latest", "path.meter_id"),
        ("GET", "/v1/consumption/daily?meter_id=a%00b", "query.meter_id"),
        ("GET", "/v1/grid/nodes/n%00/status", "path.grid_node_id"),
        ("GET", "/v1/review/items?reason=a%00b", "query.reason"),
        ("GET", "/v1/batches/a%00b", "path.batch_id"),
        ("POST", "/v1/review/items/a%00b/0/approve", "path.batch_id"),
    ):
        response = api.request(method, path, headers=headers, json={"note": "why"})
        (detail,) = error_of(response, 422, "invalid_parameter")["details"]
        assert (detail["field"], detail["type"]) == (field, "nul_character"), path
        assert "\x00" in detail["value"]
    forged = api.get("/v1/review/items", params={"cursor": cursor}, headers=headers)
    assert error_of(forged, 400, "bad_cursor")["message"] == "cursor is not one this endpoint issued"


def test_a_query_parameter_a_read_endpoint_does_not_take_is_a_422_naming_it(api: TestClient) -> None:
    """`?regoin=london` answered 200 with every region: a mistyped filter read as no filter. Every
    route of the data router, after authentication; the parameters they take still pass."""
    ids = {"{meter_id}": "NO-SUCH", "{grid_node_id}": "N1", "{station_id}": "S1"}
    paths = [route.path for route in data.router.routes if isinstance(route, APIRoute)]
    assert len(paths) == len(DATASETS) + 2  # the datasets, a meter's readings and latest
    for path in paths:
        for placeholder, value in ids.items():
            path = path.replace(placeholder, value)
        response = api.get(path, params={"regoin": "london"}, headers=token("read"))
        error = error_of(response, 422, "invalid_parameter")
        assert error["details"] == [
            {
                "field": "query.regoin",
                "message": "not a parameter of this endpoint",
                "type": "extra_forbidden",
                "value": "london",
            }
        ], path
        takes = "none)" if path.endswith("/latest") else "cursor, format, "
        assert error["message"].startswith(f"regoin: not a parameter of {path} (it takes {takes}"), error
        assert api.get(path, params={"regoin": "london"}).status_code == 401  # authentication first
        assert api.get(path, params={"regoin": "london"}, headers=token("ingest")).status_code == 403
    two = api.get("/v1/consumption/daily", params={"b": "1", "a": "2", "region": "x"}, headers=token("read"))
    assert [d["field"] for d in error_of(two, 422, "invalid_parameter")["details"]] == ["query.a", "query.b"]
    # Declared parameters, aliases (`from`, `to`) included, reach the route: an unknown meter's 404.
    known_only = api.get(
        "/v1/meters/NO-SUCH/readings",
        params={"from": "2026-03-28T00:00", "to": "2026-03-29T00:00", "limit": 5, "format": "csv"},
        headers=token("read"),
    )
    error_of(known_only, 404, "not_found")
    # The check adds no parameter of its own to the OpenAPI.
    spec = api.get("/openapi.json").json()["paths"]
    hourly = [p["name"] for p in spec["/v1/consumption/hourly"]["get"]["parameters"]]
    assert hourly == [
        "from",
        "to",
        "from_local_date",
        "to_local_date",
        "meter_id",
        "region",
        "segment",
        "cursor",
        "limit",
        "format",
    ]
    assert spec["/v1/consumption/hourly"]["get"]["security"] == [{"HTTPBearer": []}]


def test_a_query_parameter_given_twice_is_a_422_naming_it(api: TestClient) -> None:
    """`?region=london&region=wales` answered for wales alone: no parameter takes a list, so the
    request is refused whole rather than half read."""
    params = [
        ("region", "london"),
        ("region", "wales"),
        ("segment", "residential"),
        ("limit", "5"),
        ("limit", "6"),
    ]
    response = api.get("/v1/consumption/hourly", params=params, headers=token("read"))
    error = error_of(response, 422, "invalid_parameter")
    assert error["message"] == "limit, region: given more than once (each parameter takes one value)"
    assert error["details"] == [
        {"field": "query.limit", "message": "given more than once", "type": "repeated", "value": ["5", "6"]},
        {"field": "query.region", "message": "given more than once", "type": "repeated", "value": ["london", "wales"]},
    ]  # fmt: skip
    review = api.get(
        "/v1/review/items", params=[("status", "all"), ("status", "pending")], headers=token("review")
    )
    assert error_of(review, 422, "invalid_parameter")["details"][0]["field"] == "query.status"
    once = api.get("/v1/review/items", params=[("status", "all"), ("limit", "5")], headers=token("review"))
    assert once.status_code == 200, once.text


def test_a_query_parameter_a_review_endpoint_does_not_take_is_a_422_naming_it(api: TestClient) -> None:
    """`?stauts=all` listed the pending items: the review routes check as the data routes do."""
    listing = api.get("/v1/review/items", params={"stauts": "all"}, headers=token("review"))
    error = error_of(listing, 422, "invalid_parameter")
    assert [d["field"] for d in error["details"]] == ["query.stauts"]
    assert error["message"] == (
        "stauts: not a parameter of /v1/review/items "
        "(it takes cursor, format, limit, meter_id, reason, source, status)"
    )
    decision = api.post(
        "/v1/review/items/b1/0/approve", params={"dry": "1"}, json={"note": "ok"}, headers=token("review")
    )
    assert error_of(decision, 422, "invalid_parameter")["message"].startswith("dry: not a parameter")
    assert api.get("/v1/review/items", params={"stauts": "all"}).status_code == 401  # authentication first
    assert api.get("/v1/review/items", params={"stauts": "all"}, headers=token("read")).status_code == 403
    assert api.get("/v1/review/items", params={"status": "all"}, headers=token("review")).status_code == 200


def test_openapi_declares_the_errors_of_the_routes_that_take_a_body(api: TestClient) -> None:
    """415 was declared on ingestion only, and without the error shape; decisions listed 200 and 422."""
    paths = api.get("/openapi.json").json()["paths"]
    for path in ("/v1/{source}", "/v1/review/items/{batch_id}/{record_index}/approve"):
        responses = paths[path]["post"]["responses"]
        for status in ("401", "403", "415", "422"):
            schema = responses[status]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (path, status)
        assert paths[path]["post"]["requestBody"]["content"]["application/json"]["schema"]["type"] == "object"


def test_openapi_documents_every_error_in_the_api_shape(api: TestClient) -> None:
    """The GET routes listed FastAPI's own 422 body (`HTTPValidationError`, `detail`), which the API
    never answers; every route that takes a parameter now lists its errors as `ErrorBody`."""
    spec = api.get("/openapi.json").json()
    assert "HTTPValidationError" not in json.dumps(spec)
    error_body = {"$ref": "#/components/schemas/ErrorBody"}
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            errors = {k: v for k, v in operation["responses"].items() if k.startswith(("4", "5"))}
            if path == "/healthz":
                assert errors == {}, path
                continue
            if path == "/readyz":  # its 503 answers the readiness body, not an error
                assert list(errors) == ["503"] and "content" not in errors["503"], errors
                continue
            assert "422" in errors, (method, path)
            for status, response in errors.items():
                assert response["content"]["application/json"]["schema"] == error_body, (path, status)
            if path.startswith("/v1/"):
                assert {"401", "403", "429"} <= set(errors), (method, path)
            assert ("404" in errors) == ("{" in path and path != "/v1/{source}"), (method, path)
            assert ("400" in errors) == any(p["name"] == "cursor" for p in operation.get("parameters", []))


def test_the_review_list_filters_and_pages_as_the_cli_lists(api: TestClient, pg: psycopg.Connection) -> None:
    """The API built its own filter SQL beside quality/review.py's; now both use ITEM_FILTER."""
    flagged = datetime(2026, 3, 1, tzinfo=UTC)
    for index in range(9):
        pg.execute(
            "INSERT INTO ops.review_queue (batch_id, record_index, source, record_key, reasons, status, flagged_at) "
            "VALUES ('b-cli', %s, %s, %s, %s, %s, %s)",
            (
                index,
                ("meter_readings", "grid_status")[index % 2],
                f"MTR-2|2026-03-01T0{index}:00:00+00:00",
                ("spike", "spike,zero_run", "zero_run")[index % 3],
                ("pending", "approved", "rejected")[index // 3],
                flagged + timedelta(minutes=index % 4),  # ties on flagged_at: paged by the whole key
            ),
        )
    pg.commit()
    headers = token("review")
    for status in ("pending", "approved", "rejected", "all"):
        for source in (None, "meter_readings"):
            for reason in (None, "zero_run"):
                listed, cursor = [], None
                while True:
                    params = {
                        "status": status,
                        "source": source,
                        "reason": reason,
                        "limit": 2,
                        "cursor": cursor,
                    }
                    page = api.get(
                        "/v1/review/items", params={k: v for k, v in params.items() if v}, headers=headers
                    )
                    assert page.status_code == 200, page.text
                    listed += [(i["batch_id"], i["record_index"]) for i in page.json()["data"]]
                    cursor = page.json()["next_cursor"]
                    if cursor is None:
                        break
                items = review.list_items(pg, None if status == "all" else status, source, reason, limit=1000)
                assert listed == [(i.batch_id, i.record_index) for i in items], (status, source, reason)
    forged = encode_cursor(cursor_scope("review_items", {"status": "pending"}), ["not a time", "b-cli", 0])
    error_of(api.get("/v1/review/items", params={"cursor": forged}, headers=headers), 400, "bad_cursor")


def test_a_trailing_slash_is_404_not_a_redirect(api: TestClient) -> None:
    """/v1/meter_readings/ answered a 307 to /v1/meter_readings before authentication."""
    for method, path in (("POST", "/v1/meter_readings/"), ("GET", "/v1/meters/MTR-1/readings/")):
        response = api.request(method, path, headers=token("admin"), follow_redirects=False)
        error_of(response, 404, "not_found")


def test_head_answers_as_get_without_the_body(api: TestClient) -> None:
    """HEAD was 405 on every route (FastAPI routes GET alone); an uptime check asks with HEAD."""
    for path, status in (("/v1/review/items?limit=3", 200), ("/v1/meters/NO-SUCH/latest", 404)):
        get = api.get(path, headers=token("read", "review"))
        head = api.head(path, headers=token("read", "review"))
        assert (get.status_code, head.status_code) == (status, status) and get.content and not head.content
        assert head.headers["content-length"] == str(len(get.content))
        assert head.headers["content-type"] == get.headers["content-type"]
    assert api.head("/v1/review/items").status_code == 401  # the same authentication
    refused = api.head("/v1/meter_readings", headers=token("admin"))  # POST only
    assert (refused.status_code, refused.headers["allow"], refused.content) == (405, "POST", b"")


def test_a_nul_character_in_a_decision_note_is_a_422_and_the_item_stays_pending(
    api: TestClient, pg: psycopg.Connection
) -> None:
    """psycopg refused to store the note (PostgreSQL text holds no NUL): a 500 after the item was read."""
    pg.execute(
        "INSERT INTO ops.review_queue (batch_id, record_index, source, record_key, reasons, status) "
        "VALUES ('b-nul', 0, 'grid_status', 'N1|2026-03-28T00:00:00+00:00', 'stale_status', 'pending')"
    )
    pg.commit()
    for verdict in ("approve", "reject"):
        response = api.post(
            f"/v1/review/items/b-nul/0/{verdict}", json={"note": "a\x00b"}, headers=token("review")
        )
        (detail,) = error_of(response, 422, "validation_error")["details"]
        assert (detail["field"], detail["type"], detail["value"]) == (
            "body.note",
            "string_pattern_mismatch",
            "a\x00b",
        )
    assert review.get_item(pg, "b-nul", 0).status == "pending"


def test_a_blank_note_or_an_unknown_body_field_is_a_422_and_the_item_stays_pending(
    api: TestClient, pg: psycopg.Connection
) -> None:
    """A note of spaces was a 409 in the CLI's words (--by, --reason); a field the decision does not
    take (`status`, `decided_by`) was ignored, so an approve could carry a body that read as a reject."""
    pg.execute(
        "INSERT INTO ops.review_queue (batch_id, record_index, source, record_key, reasons, status) "
        "VALUES ('b-blank', 0, 'grid_status', 'N1|2026-03-28T00:00:00+00:00', 'stale_status', 'pending')"
    )
    pg.commit()
    for body, field, kind in (
        ({"note": "  "}, "body.note", "string_pattern_mismatch"),
        ({"note": "\n\t"}, "body.note", "string_pattern_mismatch"),
        ({"note": "ok", "status": "rejected"}, "body.status", "extra_forbidden"),
        ({"note": "ok", "decided_by": "someone else"}, "body.decided_by", "extra_forbidden"),
    ):
        response = api.post("/v1/review/items/b-blank/0/approve", json=body, headers=token("review"))
        (detail,) = error_of(response, 422, "validation_error")["details"]
        assert (detail["field"], detail["type"]) == (field, kind), body
    assert review.get_item(pg, "b-blank", 0).status == "pending"


@pytest.mark.parametrize(
    ("path", "param", "value", "accepted"),
    [
        ("/v1/review/items", "source", "gas", ("meter_readings", "grid_status", "weather_observations")),
        ("/v1/review/items", "reason", "spkie", ("spike", "zero_run", "voltage_out_of_range")),
        ("/v1/review/items", "status", "every", ("pending", "superseded", "all")),
        ("/v1/quality/daily", "source", "gas", ("meter_readings", "grid_status", "weather_observations")),
        ("/v1/forecasts/load", "method", "foo", ("model", "seasonal_naive", "weekday_mean", "persistence")),
        ("/v1/forecasts/accuracy", "method", "foo", ("model", "persistence")),
        ("/v1/grid/nodes/N1/states", "state", "panic", ("normal", "alert", "emergency")),
    ],
)
def test_an_unknown_value_of_a_closed_set_is_a_422_listing_the_accepted_ones(
    api: TestClient, path: str, param: str, value: str, accepted: tuple[str, ...]
) -> None:
    """`?source=gas`, `?method=foo` answered an empty 200, as if nothing matched."""
    response = api.get(path, params={param: value}, headers=token("admin"))
    error = error_of(response, 422, "invalid_parameter")
    (detail,) = error["details"]
    assert (detail["field"], detail["type"], detail["value"]) == (f"query.{param}", "enum", value)
    assert error["message"].startswith(f"{param}: unknown value {value!r}; expected one of ")
    assert all(a in error["message"] and a in detail["message"] for a in accepted), error


def test_an_unknown_format_is_a_422_naming_it_and_the_formats_on_every_route_taking_one(
    api: TestClient,
) -> None:
    """`?format=xml` was a 422 `validation_error` saying "1 invalid field(s)", its field "String should
    match pattern '^(json|csv)$'". Now, on every route that takes `format` (the datasets, a meter's
    readings, the review list), an `invalid_parameter` naming the parameter, the value and the formats,
    as the filters' closed sets are refused; with another field failing too, the same field."""
    ids = {"{meter_id}": "NO-SUCH", "{grid_node_id}": "N1", "{station_id}": "S1"}
    spec = api.get("/openapi.json").json()["paths"]
    paths = [
        path
        for path, operations in spec.items()
        if any(p["name"] == "format" for op in operations.values() for p in op.get("parameters", ()))
    ]
    assert len(paths) == len(DATASETS) + 2  # the datasets, a meter's readings, the review list
    message = "unknown value 'xml'; expected one of json, csv"
    for path in paths:
        for placeholder, value in ids.items():
            path = path.replace(placeholder, value)
        response = api.get(path, params={"format": "xml"}, headers=token("read", "review"))
        error = error_of(response, 422, "invalid_parameter")
        assert error["message"] == f"format: {message}", path
        assert error["details"] == [
            {"field": "query.format", "message": message, "type": "enum", "value": "xml"}
        ]
    both = api.get("/v1/review/items", params={"format": "XML", "limit": 0}, headers=token("review"))
    error = error_of(both, 422, "validation_error")
    assert [(d["field"], d["type"]) for d in error["details"]] == [
        ("query.limit", "greater_than_equal"),
        ("query.format", "enum"),
    ]
    assert error["details"][1]["message"] == "unknown value 'XML'; expected one of json, csv"


def test_a_known_value_of_a_closed_set_still_filters(api: TestClient, pg: psycopg.Connection) -> None:
    pg.execute(
        "INSERT INTO ops.review_queue (batch_id, record_index, source, record_key, reasons) "
        "VALUES ('b-known', 0, 'grid_status', 'N1|2026-03-28T00:00:00+00:00', 'frequency_out_of_range')"
    )
    pg.commit()
    for params, count in (
        ({"source": "grid_status", "reason": "frequency_out_of_range"}, 1),
        ({"source": "meter_readings"}, 0),
        ({"reason": "spike", "status": "all"}, 0),
    ):
        response = api.get("/v1/review/items", params=params, headers=token("review"))
        assert response.status_code == 200, response.text
        assert response.json()["count"] == count, params


TIME_EXPECTED = "expected an ISO 8601 date-time, e.g. 2026-03-28T00:00:00Z (without an offset: UTC)"


@pytest.mark.parametrize(
    ("path", "value", "kind", "expected"),
    [
        # A meter's readings said "1 invalid field(s)" (pydantic's words) where the grid said its own.
        ("/v1/meters/MTR-000002/readings", "2026-03-28T25:00", "datetime_parsing", TIME_EXPECTED),
        ("/v1/grid/nodes/N1/status", "2026-03-28T25:00", "datetime_parsing", TIME_EXPECTED),
        ("/v1/consumption/hourly", "2026-03-28T25:00", "datetime_parsing", TIME_EXPECTED),
        # A date filter answered Python's "Invalid isoformat string".
        ("/v1/consumption/daily", "2026-03-30T05:00Z", "date_parsing", "expected a date, YYYY-MM-DD"),
        ("/v1/quality/daily", "30/03/2026", "date_parsing", "expected a date, YYYY-MM-DD"),
    ],
)
def test_a_date_or_time_that_does_not_parse_says_what_is_expected_the_same_everywhere(
    api: TestClient, path: str, value: str, kind: str, expected: str
) -> None:
    for param in ("from", "to"):
        response = api.get(path, params={param: value}, headers=token("read"))
        error = error_of(response, 422, "invalid_parameter")
        assert error["message"] == f"{param}: {expected}, got {value!r}"
        assert error["details"] == [
            {"field": f"query.{param}", "message": f"{expected}, got {value!r}", "type": kind, "value": value}
        ]


# Every endpoint with a time filter: a meter's readings and each dataset whose filters hold a time.
TIME_FILTERED = [
    "/v1/meters/MTR-000001/readings",
    *(
        re.sub(r"\{[^}]+\}", "X1", d.path)
        for d in DATASETS.values()
        if any(f.kind in ("timestamp", "utc") for f in d.filters)
    ),
]


@pytest.mark.parametrize("path", TIME_FILTERED)
@pytest.mark.parametrize("value", ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"])
def test_a_time_outside_the_years_1_to_9999_in_utc_is_a_422_on_every_time_filter(
    api: TestClient, path: str, value: str
) -> None:
    """The operational tables' filters (a meter's readings, grid status, weather observations) were a
    500 (OverflowError turning the value to UTC for the cursor) where the marts' said this 422."""
    for param in ("from", "to"):
        response = api.get(path, params={param: value}, headers=token("read"))
        error = error_of(response, 422, "invalid_parameter")
        assert error["message"] == f"{param}: {value!r} is outside the years 1 to 9999 in UTC", path
        assert error["details"][0]["type"] == "datetime_parsing"


@pytest.mark.parametrize(
    "path", ["/v1/meters/MTR-000001/readings", "/v1/grid/nodes/N1/status", "/v1/consumption/hourly"]
)
def test_a_plus_sent_unencoded_in_an_offset_says_to_write_it_as_2b(api: TestClient, path: str) -> None:
    """`?from=2026-03-29T00:00:00+01:00` reaches the API as '2026-03-29T00:00:00 01:00' (a `+` in a
    query is a space): the 422 quoted the space with no hint of where it came from."""
    response = api.get(
        f"{path}?from=2026-03-29T00:00:00+01:00&to=2026-03-30T00:00:00%2B01:00", headers=token("read")
    )
    error = error_of(response, 422, "invalid_parameter")
    got = f"from: {TIME_EXPECTED}, got '2026-03-29T00:00:00 01:00'"
    assert error["message"].startswith(got), error
    assert "write the offset's '+' as %2B (2026-03-29T00:00:00%2B01:00)" in error["message"], error
    assert error["details"][0]["value"] == "2026-03-29T00:00:00 01:00"
    # A space that is no `+` gets no such hint.
    other = api.get(path, params={"from": "2026-03-29 25:00"}, headers=token("read"))
    assert "%2B" not in error_of(other, 422, "invalid_parameter")["message"]


@pytest.mark.parametrize(
    ("path", "value", "kind", "reason"),
    [
        (
            "/v1/consumption/daily",
            "2026-02-30",
            "date_parsing",
            "2026-02-30 does not exist (February 2026 has 28 days)",
        ),
        (
            "/v1/quality/daily",
            "2024-02-30",
            "date_parsing",
            "2024-02-30 does not exist (February 2024 has 29 days)",
        ),
        (
            "/v1/consumption/daily",
            "2026-13-01",
            "date_parsing",
            "2026-13-01 does not exist (months are 01 to 12)",
        ),
        (
            "/v1/consumption/daily",
            "0000-01-01",
            "date_parsing",
            "0000-01-01 does not exist (years are 0001 to 9999)",
        ),
        (
            "/v1/meters/MTR-000001/readings",
            "2026-04-31T00:00:00Z",
            "datetime_parsing",
            "2026-04-31 does not exist (April 2026 has 30 days)",
        ),
        (
            "/v1/consumption/hourly",
            "2026-02-29T12:00",
            "datetime_parsing",
            "2026-02-29 does not exist (February 2026 has 28 days)",
        ),
    ],
)
def test_a_date_that_does_not_exist_says_so(
    api: TestClient, path: str, value: str, kind: str, reason: str
) -> None:
    """`?from=2026-02-30` said 'expected a date, YYYY-MM-DD', which it is."""
    response = api.get(path, params={"from": value}, headers=token("read"))
    error = error_of(response, 422, "invalid_parameter")
    assert error["message"] == f"from: {reason}, got {value!r}"
    assert error["details"][0]["type"] == kind
