"""The data API end to end, on real services: a home built by `metrify simulate` + `metrify run`
(embedded PostgreSQL, the dbt marts), Redis from `redis-server`, and Kafka for the Kafka path.

Requests go through the ASGI app with its lifespan (starlette's TestClient: real routing,
dependencies, middleware and database), and over real HTTP to uvicorn where concurrency matters.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import jwt
import psycopg
import pytest
import redis
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from filelock import FileLock
from jsonschema import Draft202012Validator
from typer.testing import CliRunner

from metrify_assets.cli.main import app as cli
from metrify_assets.contracts import CONTRACTS
from metrify_assets.definitions import defs as load_defs
from metrify_assets.env import Settings, resolve_settings
from metrify_assets.ingestion.landing import list_landed
from metrify_assets.orchestration.catchup import ingest_files
from metrify_assets.orchestration.drain import DrainSummary, drain
from metrify_assets.orchestration.instance import local_instance
from metrify_assets.resources import PostgresResource
from metrify_assets.resources.build import postgres_resource
from metrify_assets.resources.kafka import KafkaResource
from metrify_assets.serving.app import ApiConfigError, create_app
from metrify_assets.serving.auth import issue_token
from metrify_assets.serving.datasets import DATASETS
from metrify_assets.serving.kafka import KafkaSender
from metrify_assets.serving.routes import data
from metrify_assets.serving.row_schemas import dataset_row, stored_row
from metrify_assets.storage.embedded_server import stop_embedded
from metrify_assets.storage.known import GRID_NODE, WEATHER_STATION
from metrify_assets.storage.latest import LATEST_COLUMNS
from metrify_platform import sqlite_engines
from tests.serving.uvicorn_thread import serve

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.e2e]
SECRET = "test-secret-of-at-least-32-bytes-for-hs256"


def token(
    *scopes: str,
    meters: list[str] | None = None,
    ttl: timedelta = timedelta(minutes=10),
    subject: str = "tester",
) -> dict[str, str]:
    signed = issue_token(SECRET, subject, list(scopes), ttl, meters=meters)
    return {"Authorization": f"Bearer {signed}"}


@contextmanager
def simulated_home(
    tmp_path_factory: pytest.TempPathFactory, redis_server: str, name: str, *simulate: str
) -> Iterator[Path]:
    """A home `metrify simulate` (with these arguments) filled, ingested and refreshed (`metrify run`);
    its embedded PostgreSQL stopped after, and this process's SQLite connections (Dagster's storage,
    held open by `sqlite_engines`) closed, so that nothing writes to its files any more."""
    home = tmp_path_factory.mktemp(name)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("METRIFY_HOME", str(home))
        mp.setenv("DAGSTER_HOME", str(home / "dagster"))
        mp.setenv("REDIS_URL", redis_server)
        runner = CliRunner()
        for args in (["simulate", *simulate], ["run", "--json"]):
            result = runner.invoke(cli, args, catch_exceptions=False)
            assert result.exit_code == 0, result.output
    yield home
    stop_embedded(resolve_settings({"METRIFY_HOME": str(home)}).pg_data_dir)
    sqlite_engines.release()


def api_home_template(tmp_path_factory: pytest.TempPathFactory, redis_server: str) -> Path:
    """The home every `home` is copied from, built once per session (~75 s; three modules use it) and
    its PostgreSQL stopped: the first xdist worker to get here builds it under a lock in the session's
    directory that all workers share; the others wait for it and reuse it."""
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent
    template = shared / "api-home-template"
    with FileLock(shared / "api-home-template.lock"):
        if not template.exists():
            simulate = ("--meters", "12", "--days", "2", "--seed", "8")
            with simulated_home(tmp_path_factory, redis_server, "api-home-build", *simulate) as built:
                pass
            built.rename(template)
    return template


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, redis_server: str) -> Iterator[Path]:
    """A home with two simulated days of 12 meters, ingested and refreshed (`metrify run`): this
    module's own copy of `api_home_template`, as the modules change their home.

    A copy is that home at another path: the database (pg_dumpall) and the lake hold no absolute
    path; the server's socket is placed by its data directory at start; dagster.yaml's event-log
    directory is rewritten by `prepare_local_home` on first use; the Dagster history's paths are
    history. `cp -a` keeps owners (as root, pgserver's postgres runs as the user `pgserver`) and
    mtimes (the meter registry's file version). Redis is emptied, as after a restart: no cache
    entry left by the build or by another module outlives its data."""
    home = tmp_path_factory.mktemp("api-home")
    template = api_home_template(tmp_path_factory, redis_server)
    subprocess.run(["cp", "-a", f"{template}/.", str(home)], check=True)
    with redis.Redis.from_url(redis_server) as cache:
        cache.flushall()
    yield home
    stop_embedded(resolve_settings({"METRIFY_HOME": str(home)}).pg_data_dir)


def settings_for(home: Path, redis_server: str | None, **extra: str) -> Settings:
    env = {"METRIFY_HOME": str(home), "METRIFY_API_JWT_SECRET": SECRET, **extra}
    if redis_server:
        env["REDIS_URL"] = redis_server
    return resolve_settings(env)


@pytest.fixture(scope="module")
def settings(home: Path, redis_server: str) -> Settings:
    return settings_for(home, redis_server)


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def query(settings: Settings, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with postgres_resource(settings).connect() as conn:
        return conn.execute(sql, params).fetchall()


def ingest_landed(home: Path, redis_server: str, sources: tuple[str, ...] = ("meter_readings",)) -> int:
    """Run the ingest job on the landing files the ledger does not hold yet, as the landing sensor
    would (the refresh and the marts are not needed here); returns how many."""
    with pytest.MonkeyPatch.context() as mp:
        for name, value in (("METRIFY_HOME", str(home)), ("DAGSTER_HOME", str(home / "dagster"))):
            mp.setenv(name, value)
        mp.setenv("REDIS_URL", redis_server)
        settings = resolve_settings()
        with postgres_resource(settings).connect() as conn:
            done = {
                s: {
                    b
                    for (b,) in conn.execute("SELECT batch_id FROM ops.ingest_ledger WHERE source = %s", (s,))
                }
                for s in sources
            }
        files = [
            f for s in sources for f in list_landed(settings.landing_dir, s) if f.batch_id not in done[s]
        ]
        instance = local_instance(settings)
        try:
            assert ingest_files(load_defs(), instance, files) == {}
        finally:
            instance.dispose()
    return len(files)


def recent(days_ago: int, minute: int) -> str:
    """An aligned quarter-hour `days_ago` days back (the rules reject future and misaligned times)."""
    day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=days_ago)
    return (day + timedelta(minutes=minute)).isoformat()


def a_meter(settings: Settings) -> str:
    return str(query(settings, "SELECT min(meter_id) FROM ops.meter_readings")[0][0])


def drain_readings(defs: dg.Definitions, kafka: KafkaResource, pg: PostgresResource) -> DrainSummary:
    """Drain the meter-readings topic once, as the sensor's runs would."""
    return drain(defs, dg.DagsterInstance.ephemeral(), kafka, pg, sources=["meter_readings"])


def kafka_settings(home: Path, pg_resource: PostgresResource, kafka: KafkaResource) -> Settings:
    """The API on the session's database, sending to the test's broker."""
    env = {
        "METRIFY_HOME": str(home),
        "METRIFY_POSTGRES_URL": pg_resource.get_url(),
        "METRIFY_API_JWT_SECRET": SECRET,
    }
    return resolve_settings({**env, "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers})


def test_the_api_refuses_to_start_without_a_way_to_verify_tokens(home: Path) -> None:
    with pytest.raises(ApiConfigError, match="METRIFY_API_JWT_SECRET"):
        create_app(resolve_settings({"METRIFY_HOME": str(home)}))


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ready"
    assert body["checks"]["postgres"]["ok"] and body["checks"]["redis"]["ok"]
    assert "kafka" not in body["checks"]  # not configured: the landing directory


def test_every_dataset_answers_with_rows_in_json_and_csv(client: TestClient, settings: Settings) -> None:
    node = query(settings, "SELECT min(grid_node_id) FROM ops.grid_status")[0][0]
    station = query(settings, "SELECT min(station_id) FROM ops.weather_observations")[0][0]
    headers = token("read")
    checked = booleans = 0
    for dataset in DATASETS.values():
        path = dataset.path.replace("{grid_node_id}", node).replace("{station_id}", station)
        response = client.get(path, headers=headers, params={"limit": 5})
        assert response.status_code == 200, (path, response.text)
        body = response.json()
        expected = query(settings, f"SELECT count(*) FROM {dataset.schema}.{dataset.table}")[0][0]
        if dataset.name not in ("grid_states",):  # a calm simulated grid may have no state event
            assert body["count"] == min(5, expected) > 0, dataset.name
        assert set(dataset.key) <= set(body["data"][0]) if body["data"] else True
        as_csv = client.get(path, headers={**headers, "Accept": "text/csv"}, params={"limit": 5})
        rows = list(csv.reader(io.StringIO(as_csv.text)))
        assert as_csv.headers["content-type"].startswith("text/csv")
        assert len(rows) == body["count"] + 1 and set(dataset.key) <= set(rows[0])
        # Times carry their offset, the marts' `_utc` columns (`timestamp` in dbt) included.
        stamps = [
            value
            for record in [*body["data"], *(dict(zip(rows[0], r, strict=True)) for r in rows[1:])]
            for name, value in record.items()
            if name.endswith(("_utc", "_at", "_start")) and value and "T" in str(value)
        ]
        assert all(str(v)[-6:] in ("+00:00",) for v in stamps), (dataset.name, stamps[:3])
        checked += len(stamps)
        # Booleans as the JSON body writes them (they were Python's True / False).
        flags = {name for record in body["data"] for name, value in record.items() if isinstance(value, bool)}
        for r in rows[1:]:
            cells = dict(zip(rows[0], r, strict=True))
            assert all(cells[name] in ("true", "false") for name in flags), (dataset.name, flags)
        booleans += len(flags)
    assert checked > 0 and booleans > 0


def data_paths(settings: Settings) -> dict[str, str]:
    """Every GET data route's OpenAPI path and a path of it that has rows (a node, a station, a meter)."""
    ids = {
        "{grid_node_id}": query(settings, "SELECT min(grid_node_id) FROM ops.grid_status")[0][0],
        "{station_id}": query(settings, "SELECT min(station_id) FROM ops.weather_observations")[0][0],
        "{meter_id}": query(settings, "SELECT min(meter_id) FROM ops.meter_readings")[0][0],
    }
    templates = [d.path for d in DATASETS.values()]
    templates += ["/v1/meters/{meter_id}/readings", "/v1/meters/{meter_id}/latest"]
    paths = {}
    for template in templates:
        path = template
        for placeholder, value in ids.items():
            path = path.replace(placeholder, value)
        paths[template] = path
    return paths


def test_every_json_page_is_what_its_openapi_schema_says(client: TestClient, settings: Settings) -> None:
    """/docs listed no columns: every data route's 200 had an empty schema. Each now documents its
    rows (the marts' from their dbt contracts, the operational tables' from the message contracts),
    and a real page of every route validates against it, its columns in the schema's order."""
    spec = client.get("/openapi.json").json()
    headers = token("read")
    rows = nullable_nulls = 0
    for template, path in data_paths(settings).items():
        ok = spec["paths"][template]["get"]["responses"]["200"]
        schema = ok["content"]["application/json"]["schema"]
        params = {} if template.endswith("/latest") else {"limit": 500}
        body = client.get(path, headers=headers, params=params).json()
        Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER).validate(body)
        row = schema["properties"]["data"].get("items", schema["properties"]["data"])
        records = body["data"] if isinstance(body["data"], list) else [body["data"]]
        assert records, template
        for record in records:
            assert list(record) == list(row["properties"]), template
        if "text/csv" in ok["content"]:
            header = client.get(path, headers={**headers, "Accept": "text/csv"}, params={"limit": 1})
            assert header.text.splitlines()[0] == ok["content"]["text/csv"]["example"].strip(), template
        nullable_nulls += sum(1 for record in records for name, value in record.items() if value is None)
        rows += len(records)
    assert rows > 1000 and nullable_nulls > 0  # real pages, with nulls where the schemas allow them


# The JSON type each PostgreSQL type a data route serves leaves the API as.
PG_JSON_TYPES = {
    "text": "string",
    "double precision": "number",
    "bigint": "integer",
    "integer": "integer",
    "boolean": "boolean",
    "date": "string",
    "timestamp without time zone": "string",
    "timestamp with time zone": "string",
}


def test_the_documented_rows_have_postgresqls_columns_types_and_nulls(settings: Settings) -> None:
    """The row schemas come from the contracts, not from the database: they must still describe
    the relations the routes read, column for column. An operational table's NOT NULL is the
    schema's non-null both ways; a mart's not-null comes from its dbt tests (PostgreSQL has no
    constraint for it), so only its types and columns are compared."""
    relations = [(d.schema, d.table, dataset_row(d)) for d in DATASETS.values()]
    relations.append(("ops", "meter_readings", stored_row(CONTRACTS["meter_readings"], LATEST_COLUMNS)))
    compared = 0
    for schema, table, columns in relations:
        found = {
            name: (data_type, nullable == "YES")
            for name, data_type, nullable in query(
                settings,
                "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
                "WHERE table_schema = %s AND table_name = %s",
                (schema, table),
            )
        }
        if schema == "marts":
            assert [c.name for c in columns] == list(found), table  # the contract is the whole mart
        for column in columns:
            data_type, nullable = found[column.name]
            assert PG_JSON_TYPES[data_type] == column.type, (table, column.name, data_type)
            assert (column.format == "date") == (data_type == "date"), (table, column.name)
            if schema == "ops":
                assert column.nullable == nullable, (table, column.name, nullable)
            compared += 1
    assert compared > 150


def test_a_grid_node_or_station_never_seen_is_404_on_each_of_its_endpoints(
    client: TestClient, settings: Settings
) -> None:
    """They answered 200 with an empty page (an unknown meter was already 404); a known one with
    nothing in the range is still an empty page. The marts' endpoints, on the real marts."""
    ids = {
        GRID_NODE: query(settings, "SELECT min(grid_node_id) FROM ops.grid_status")[0][0],
        WEATHER_STATION: query(settings, "SELECT min(station_id) FROM ops.weather_observations")[0][0],
    }
    headers = token("read")
    paths = []
    for dataset in DATASETS.values():
        kind = dataset.path_kind
        if kind is None:
            continue
        placeholder = f"{{{kind.column}}}"
        missing = client.get(dataset.path.replace(placeholder, "NOPE-1"), headers=headers)
        assert missing.status_code == 404, (dataset.path, missing.text)
        assert missing.json()["error"]["message"] == kind.unknown_message("NOPE-1")
        empty = client.get(
            dataset.path.replace(placeholder, ids[kind]), params={"from": "2099-01-01T00:00"}, headers=headers
        )
        assert empty.status_code == 200 and empty.json()["data"] == [], (dataset.path, empty.text)
        paths.append(dataset.path)
    assert len(paths) == 5  # status, states, stability; observations, conditions


def test_filters_are_typed_and_bad_values_get_a_422_naming_the_parameter(client: TestClient) -> None:
    response = client.get("/v1/consumption/daily", headers=token("read"), params={"from": "yesterday"})
    assert response.status_code == 422
    assert "from" in json.dumps(response.json()["error"])
    days = client.get("/v1/consumption/daily", headers=token("read"), params={"limit": 10_000}).json()["data"]
    first = min(d["local_date"] for d in days)
    later = client.get(
        "/v1/consumption/daily", headers=token("read"), params={"from": first, "limit": 10_000}
    ).json()["data"]
    assert later and all(d["local_date"] >= first for d in later)
    after_first = [d for d in days if d["local_date"] > first]
    only_later = client.get(
        "/v1/consumption/daily",
        headers=token("read"),
        params={"from": str(max(d["local_date"] for d in days)), "limit": 10_000},
    ).json()["data"]
    assert len(only_later) <= len(after_first) < len(days)


def test_every_filter_narrows_its_dataset_to_the_rows_it_names(
    client: TestClient, settings: Settings
) -> None:
    """`/hourly?segment=industrial` returned every segment and `/peaks?region=london&segment=industrial`
    all 400 rows: the docs promised filters the datasets did not have. Each text filter of each
    dataset, on the real marts, against the rows PostgreSQL holds for that value."""
    headers, checked, narrowed = token("read"), 0, set()
    for dataset in DATASETS.values():
        if dataset.path_kind is not None:
            continue
        for f in (f for f in dataset.filters if f.kind == "text"):
            table = f"{dataset.schema}.{dataset.table}"
            value, matching, total = query(
                settings,
                f"SELECT {f.column}, count(*), sum(count(*)) OVER () FROM {table} "
                f"WHERE {f.column} IS NOT NULL GROUP BY 1 ORDER BY 2, 1 LIMIT 1",
            )[0]
            body = client.get(dataset.path, headers=headers, params={f.param: value, "limit": 10_000}).json()
            assert body["count"] == min(matching, 10_000), (dataset.path, f.param, value)
            assert {r[f.column] for r in body["data"]} == {value}, (dataset.path, f.param)
            checked += 1
            if matching < total:  # the simulated data may hold one value (a forecast method)
                narrowed.add((dataset.path.rsplit("/", 1)[-1], f.param))
    assert checked >= 20
    consumption = {
        (path, param) for path in ("daily", "hourly", "peaks") for param in ("meter_id", "region", "segment")
    }
    assert consumption | {("regions", "region"), ("regions", "segment")} <= narrowed
    # The docs' four consumption endpoints take region and segment, `meter_id` all but `/regions`.
    spec = client.get("/openapi.json").json()["paths"]
    for path in ("daily", "hourly", "regions", "peaks"):
        names = {p["name"] for p in spec[f"/v1/consumption/{path}"]["get"]["parameters"]}
        assert {"from", "to", "region", "segment"} <= names and ("meter_id" in names) == (path != "regions")
    # Both filters at once, as in the trial (`?region=london&segment=industrial`), on a pair the
    # simulated meters have.
    region, segment, matching, total = query(
        settings,
        "SELECT region, segment, count(*), sum(count(*)) OVER () FROM marts.fct_peak_demand "
        "GROUP BY 1, 2 ORDER BY 3, 1, 2 LIMIT 1",
    )[0]
    params = {"region": region, "segment": segment, "limit": 10_000}
    body = client.get("/v1/consumption/peaks", headers=headers, params=params).json()
    assert 0 < body["count"] == matching < total
    assert {(r["region"], r["segment"]) for r in body["data"]} == {(region, segment)}


def test_unknown_selects_the_meters_the_regions_rollup_calls_unknown(
    client: TestClient, settings: Settings
) -> None:
    """A meter not in the registry has a null region and segment in the per-meter marts and is
    `unknown` in /v1/consumption/regions; `region=unknown` on /daily, /hourly and /peaks found none
    of its rows, so an analyst could not go from the rollup to its meters."""
    tables = {
        "daily": "fct_consumption_daily",
        "hourly": "fct_consumption_hourly",
        "peaks": "fct_peak_demand",
    }
    with postgres_resource(settings).connect() as conn:
        for table in tables.values():  # one row of each mart, as an unregistered meter's
            conn.execute(f"CREATE TEMP TABLE one_{table} AS SELECT * FROM marts.{table} LIMIT 1")
            conn.execute(f"UPDATE one_{table} SET meter_id = 'UNREG-1', region = NULL, segment = NULL")
            conn.execute(f"INSERT INTO marts.{table} SELECT * FROM one_{table}")
        conn.commit()
        try:
            for path in tables:
                for param in ("region", "segment"):
                    body = client.get(
                        f"/v1/consumption/{path}", headers=token("read"), params={param: "unknown"}
                    ).json()
                    assert {r["meter_id"] for r in body["data"]} == {"UNREG-1"}, (path, param)
                    assert {r[param] for r in body["data"]} == {None}
        finally:
            for table in tables.values():
                conn.execute(f"DELETE FROM marts.{table} WHERE meter_id = 'UNREG-1'")
            conn.commit()


def test_paging_formats_and_ranges_still_work_beside_the_unknown_parameter_check(
    client: TestClient, settings: Settings
) -> None:
    """Every parameter a dataset declares passes the 422 for unknown ones: a filtered range paged by
    cursor in CSV gathers what one JSON page holds, and a typo is refused rather than ignored."""
    headers = token("read")
    first, last = query(
        settings, "SELECT min(hour_start_utc), max(hour_start_utc) FROM marts.fct_consumption_hourly"
    )[0]
    params = {"segment": "industrial", "from": first.isoformat(), "to": last.isoformat()}
    whole = client.get("/v1/consumption/hourly", headers=headers, params={**params, "limit": 10_000}).json()
    keys = [(r["hour_start_utc"], r["meter_id"]) for r in whole["data"]]
    assert keys and whole["next_cursor"] is None
    paged: list[tuple[str, str]] = []
    cursor: str | None = None
    while True:
        page_params: dict[str, Any] = {**params, "limit": 7, "format": "csv"}
        if cursor:
            page_params["cursor"] = cursor
        response = client.get("/v1/consumption/hourly", headers=headers, params=page_params)
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
        paged += [(r["hour_start_utc"], r["meter_id"]) for r in csv.DictReader(io.StringIO(response.text))]
        cursor = response.headers.get("x-next-cursor")
        if cursor is None:
            break
    assert paged == keys
    typo = client.get("/v1/consumption/hourly", headers=headers, params={"segmnet": "industrial"})
    assert typo.status_code == 422 and typo.json()["error"]["details"][0]["field"] == "query.segmnet"


def test_auth_cases_on_the_api(client: TestClient, settings: Settings) -> None:
    meter = a_meter(settings)
    path = f"/v1/meters/{meter}/readings"
    assert client.get(path).status_code == 401
    assert client.get(path).headers["www-authenticate"].startswith("Bearer")
    assert client.get(path, headers={"Authorization": "Bearer not-a-jwt"}).status_code == 401
    stale = jwt.encode(
        {"sub": "tester", "scope": "read", "exp": int(time.time()) - 120}, SECRET, algorithm="HS256"
    )
    expired = client.get(path, headers={"Authorization": f"Bearer {stale}"})
    assert expired.status_code == 401 and "expired" in expired.text
    assert client.get(path, headers=token("ingest")).status_code == 403
    assert client.get(path, headers=token("admin")).status_code == 200
    assert client.post("/v1/meter_readings", json={}, headers=token("read")).status_code == 403
    error = client.get(path).json()["error"]
    assert error["status"] == 401 and error["code"] and error["message"]


def test_a_meter_limited_token_reads_its_meters_rows_and_nothing_that_is_not_per_meter(
    client: TestClient, settings: Settings
) -> None:
    """Every data endpoint with a token limited to one meter. /v1/consumption/regions, the forecasts
    and the other lists without a meter column returned every row, though the docs say a limited
    token's lists hold only its rows: a region-day with meter_count 1 is one customer's consumption."""
    meters = [m for (m,) in query(settings, "SELECT DISTINCT meter_id FROM ops.meter_readings ORDER BY 1")]
    mine, other = meters[0], meters[1]
    node = query(settings, "SELECT min(grid_node_id) FROM ops.grid_status")[0][0]
    station = query(settings, "SELECT min(station_id) FROM ops.weather_observations")[0][0]
    ids = {"{meter_id}": mine, "{grid_node_id}": node, "{station_id}": station}
    spec = client.get("/openapi.json").json()["paths"]
    per_meter = {d.path: d for d in DATASETS.values() if d.meter_column is not None}
    assert set(per_meter) == {
        "/v1/meters",
        "/v1/consumption/daily",
        "/v1/consumption/hourly",
        "/v1/consumption/peaks",
    }
    refused, served = [], []
    for route in (r for r in data.router.routes if isinstance(r, APIRoute)):
        path = route.path
        for placeholder, value in ids.items():
            path = path.replace(placeholder, value)
        for limited in (
            token("read", meters=[mine]),
            token("admin", meters=[mine]),
            token("read", meters=[]),
        ):
            response = client.get(path, headers=limited, params={"regoin": "x"})  # the 403 comes first
            if spec[route.path]["get"].get("x-rows-per-meter"):
                assert response.status_code == 422, (path, response.text)
                continue
            assert response.status_code == 403, (path, response.text)
            error = response.json()["error"]
            assert error["code"] == "meter_forbidden" and path in error["message"]
            assert set(error["details"]["per_meter_endpoints"]) == {
                *per_meter,
                "/v1/meters/{meter_id}/readings",
                "/v1/meters/{meter_id}/latest",
            }
        assert client.get(path, headers=token("read")).status_code == 200, path  # unlimited: served
        if not spec[route.path]["get"].get("x-rows-per-meter"):
            refused.append(route.path)
            continue
        served.append(route.path)
        dataset = per_meter.get(route.path)
        params = {"limit": 10_000} if dataset is not None else {}
        response = client.get(path, headers=token("read", meters=[mine]), params=params)
        assert response.status_code == 200, (path, response.text)
        if dataset is not None:  # a list: its rows are the meter's, all of them
            rows = response.json()["data"]
            assert rows and {r["meter_id"] for r in rows} == {mine}, path
            table = f"{dataset.schema}.{dataset.table}"
            assert (
                len(rows)
                == query(settings, f"SELECT count(*) FROM {table} WHERE meter_id = %s", (mine,))[0][0]
            )
            other_meter = client.get(path, headers=token("read", meters=[mine]), params={"meter_id": other})
            assert other_meter.status_code == 403 and other_meter.json()["error"]["code"] == "meter_forbidden"
            nothing = client.get(path, headers=token("read", meters=[]), params={"limit": 5})
            assert nothing.status_code == 200 and nothing.json()["count"] == 0
        else:  # one meter's endpoint: another meter is 403
            forbidden = client.get(path.replace(mine, other), headers=token("read", meters=[mine]))
            assert forbidden.status_code == 403 and forbidden.json()["error"]["code"] == "meter_forbidden"
    assert len(served) == 6 and len(refused) == len(DATASETS) - 4
    assert "/v1/consumption/regions" in refused and "/v1/forecasts/load" in refused


def test_readings_come_from_the_vee_series_and_page_without_gaps(
    client: TestClient, settings: Settings
) -> None:
    meter = a_meter(settings)
    stored = query(settings, "SELECT count(*) FROM ops.vee_readings WHERE meter_id = %s", (meter,))[0][0]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 37}
        if cursor:
            params["cursor"] = cursor
        page = client.get(f"/v1/meters/{meter}/readings", headers=token("read"), params=params).json()
        seen += [r["reading_start"] for r in page["data"]]
        assert {r["status"] for r in page["data"]} <= {"actual", "estimated", "edited", "missing", "failed"}
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == stored
    assert seen == sorted(seen)
    bad = client.get(f"/v1/meters/{meter}/readings", headers=token("read"), params={"cursor": "garbage"})
    assert bad.status_code == 400


def test_pagination_is_stable_under_concurrent_inserts(settings: Settings) -> None:
    """Over real HTTP while a writer inserts readings before and after the pages being read: every
    row that existed at the start is seen exactly once, none twice."""
    meter = "MTR-PAGING"
    with postgres_resource(settings).connect() as conn:
        conn.execute("DELETE FROM ops.meter_readings WHERE meter_id = %s", (meter,))
        conn.execute(
            "INSERT INTO ops.meter_readings (meter_id, reading_start, interval_minutes, energy_kwh, record_version, "
            "batch_id) SELECT %s, timestamptz '2026-06-01 00:00Z' + n * interval '30 minutes', 15, 0.1, 1, 'seed' "
            "FROM generate_series(0, 399) AS n",
            (meter,),
        )
    before = {
        r[0].isoformat()
        for r in query(settings, "SELECT reading_start FROM ops.meter_readings WHERE meter_id = %s", (meter,))
    }
    stop = threading.Event()

    def writer() -> None:
        n = 0
        with psycopg.connect(postgres_resource(settings).get_url(), autocommit=True) as conn:
            while not stop.is_set():
                conn.execute(  # between existing readings (15 min after each), early and late in the range
                    "INSERT INTO ops.meter_readings (meter_id, reading_start, interval_minutes, energy_kwh, "
                    "record_version, batch_id) VALUES (%s, timestamptz '2026-06-01 00:15Z' + %s * interval '30 minutes', "
                    "15, 0.2, 1, 'concurrent') ON CONFLICT DO NOTHING",
                    (meter, (n * 37) % 400),
                )
                n += 1

    thread = threading.Thread(target=writer)
    with serve(create_app(settings)) as base:
        thread.start()
        seen: list[str] = []
        cursor = None
        with httpx.Client(base_url=base, headers=token("read"), timeout=30) as http:
            while True:
                params: dict[str, Any] = {"limit": 25, **({"cursor": cursor} if cursor else {})}
                page = http.get(f"/v1/meters/{meter}/readings", params=params).json()
                seen += [r["reading_start"] for r in page["data"]]
                if not (cursor := page["next_cursor"]):
                    break
        stop.set()
        thread.join()
    normalised = [s.replace("Z", "+00:00") for s in seen]
    assert len(normalised) == len(set(normalised))
    assert before <= set(normalised)
    assert normalised == sorted(normalised)
    assert query(settings, "SELECT count(*) FROM ops.meter_readings WHERE batch_id = 'concurrent'")[0][0] > 0


def test_a_bad_body_gets_a_422_with_the_failing_fields_and_nothing_is_written(
    client: TestClient, settings: Settings
) -> None:
    before = query(settings, "SELECT count(*) FROM ops.api_batches")[0][0]
    landed = sorted((settings.landing_dir / "meter_readings").glob("*.jsonl"))
    body = {
        "records": [
            {
                "meter_id": "MTR-X",
                "reading_start": "2026-06-01T00:00:00+00:00",
                "interval_minutes": 15,
                "energy_kwh": 1,
            },
            {"meter_id": "MTR-X", "reading_start": "not a time", "interval_minutes": "15", "energy_kwh": 1},
        ]
    }
    response = client.post("/v1/meter_readings", json=body, headers=token("ingest"))
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["status"] == 422
    failing = json.dumps(error["details"])
    assert "body.records.1.reading_start" in failing and "body.records.1.interval_minutes" in failing
    assert "records.0" not in failing
    assert query(settings, "SELECT count(*) FROM ops.api_batches")[0][0] == before
    assert sorted((settings.landing_dir / "meter_readings").glob("*.jsonl")) == landed
    assert client.post("/v1/no_such_source", json={}, headers=token("ingest")).status_code == 404


def test_a_timestamp_with_an_offset_no_place_has_gets_a_422(client: TestClient, settings: Settings) -> None:
    """+14:30 was taken (202) and stored as 09:30 UTC the day before; offsets run -12:00..+14:00
    (+14:00 passes: tests/serving/test_schemas.py)."""
    before = query(settings, "SELECT count(*) FROM ops.api_batches")[0][0]
    observation = {"station_id": "WX-OFFSET", "temperature_c": 9.5}
    response = client.post(
        "/v1/weather_observations",
        json={**observation, "observed_at": "2026-06-01T10:00:00+14:30"},
        headers=token("ingest"),
    )
    assert response.status_code == 422, response.text
    (detail,) = response.json()["error"]["details"]
    assert detail["field"] == "body.observed_at" and detail["value"] == "2026-06-01T10:00:00+14:30"
    assert "offset from -12:00 to +14:00" in detail["message"]
    assert query(settings, "SELECT count(*) FROM ops.api_batches")[0][0] == before  # nothing landed


def test_a_posted_batch_reaches_ops_and_its_status_says_what_became_of_it(
    client: TestClient, settings: Settings, home: Path, redis_server: str
) -> None:
    meter = a_meter(settings)
    good = [
        {
            "meter_id": meter,
            "reading_start": recent(2, m),
            "interval_minutes": 15,
            "energy_kwh": 0.4,
        }
        for m in (0, 15, 30)
    ]
    out_of_range = {
        "meter_id": meter,
        "reading_start": recent(2, 45),
        "interval_minutes": 15,
        "energy_kwh": -5,
    }
    sender = token("ingest")
    jti = jwt.decode(sender["Authorization"].split()[1], options={"verify_signature": False})["jti"]
    posted = client.post("/v1/meter_readings", json={"records": [*good, out_of_range]}, headers=sender)
    assert posted.status_code == 202, posted.text
    batch = posted.json()["data"]
    assert posted.headers["location"] == f"/v1/batches/{batch['batch_id']}"
    assert batch["status"] == "queued" and batch["records"] == 4 and batch["destination"] == "landing"
    # The token that posted it, not only its subject: polled with another token of the same subject.
    assert batch["token_id"] == jti
    queued = client.get(posted.headers["location"], headers=token("ingest")).json()["data"]
    assert queued["status"] == "queued" and queued["accepted"] is None and queued["token_id"] == jti
    stored_by = query(
        settings, "SELECT token_id FROM ops.api_batches WHERE batch_id = %s", (batch["batch_id"],)
    )
    assert stored_by == [(jti,)]

    assert ingest_landed(home, redis_server) == 1

    done = client.get(posted.headers["location"], headers=token("ingest")).json()["data"]
    assert done["status"] == "processed"
    assert done["accepted"] + done["quarantined"] == 4
    assert done["quarantined"] == 1 and sum(done["reasons"].values()) >= 1
    stored = query(
        settings,
        "SELECT count(*) FROM ops.meter_readings WHERE meter_id = %s AND reading_start >= %s AND reading_start < %s",
        (meter, recent(2, 0), recent(2, 45)),
    )[0][0]
    assert stored == 3
    assert client.get("/v1/batches/api-unknown", headers=token("ingest")).status_code == 404


def test_the_latest_reading_is_cached_and_never_stale_after_a_newer_version(
    client: TestClient, settings: Settings, home: Path, redis_server: str
) -> None:
    meter = query(settings, "SELECT max(meter_id) FROM ops.meter_readings WHERE meter_id LIKE 'MTR-%%'")[0][0]
    first = client.get(f"/v1/meters/{meter}/latest", headers=token("read"))
    again = client.get(f"/v1/meters/{meter}/latest", headers=token("read"))
    assert first.status_code == again.status_code == 200
    assert again.headers["x-metrify-source"] == "cache"
    latest = again.json()["data"]
    newer = {
        "meter_id": meter,
        "reading_start": latest["reading_start"],
        "interval_minutes": latest["interval_minutes"],
        "energy_kwh": round(float(latest["energy_kwh"]) + 1.25, 3),
    }
    assert client.post("/v1/meter_readings", json=newer, headers=token("ingest")).status_code == 202
    assert ingest_landed(home, redis_server) == 1
    served = client.get(f"/v1/meters/{meter}/latest", headers=token("read")).json()["data"]
    assert served["energy_kwh"] == pytest.approx(newer["energy_kwh"])
    assert served["record_version"] > latest["record_version"]


def test_redis_stopped_mid_test_falls_back_to_postgresql(home: Path, redis_server_factory: Any) -> None:
    """A Redis of this test's own, stopped while the API runs: reads still answer, /readyz says so."""
    redis = redis_server_factory()
    settings = settings_for(home, redis.url)
    meter = a_meter(settings)
    with TestClient(create_app(settings)) as api:
        assert api.get(f"/v1/meters/{meter}/latest", headers=token("read")).status_code == 200
        assert (
            api.get(f"/v1/meters/{meter}/latest", headers=token("read")).headers["x-metrify-source"]
            == "cache"
        )
        redis.stop()
        down = api.get(f"/v1/meters/{meter}/latest", headers=token("read"))
        assert down.status_code == 200 and down.headers["x-metrify-source"] == "database"
        ready = api.get("/readyz").json()
        assert ready["status"] == "degraded" and ready["checks"]["redis"]["ok"] is False


def test_with_kafka_a_post_becomes_one_message_and_its_records_are_counted_exactly(
    kafka_defs: dg.Definitions,
    kafka_resource: KafkaResource,
    pg_resource: PostgresResource,
    tmp_path: Path,
) -> None:
    """Posted to Kafka, drained by the pipeline in a micro-batch with other messages: the request's
    status counts its own records, not the micro-batch's."""
    kafka_resource.ensure_topics(partitions=1)
    settings = kafka_settings(tmp_path, pg_resource, kafka_resource)
    app = create_app(settings)
    with TestClient(app) as api, kafka_resource.producer() as producer:
        app.state.sender = KafkaSender(kafka_resource, producer)
        assert api.get("/readyz").json()["checks"]["kafka"]["ok"] is True
        other = {
            "meter_id": "MTR-K",
            "reading_start": recent(3, 0),
            "interval_minutes": 15,
            "energy_kwh": 1.0,
        }
        api.post(
            "/v1/meter_readings",
            json={"records": [other, {**other, "energy_kwh": -9}]},
            headers=token("ingest"),
        )
        mine = [
            {
                "meter_id": "MTR-K",
                "reading_start": recent(3, 60 + m),
                "interval_minutes": 15,
                "energy_kwh": 0.5,
            }
            for m in (0, 15, 30)
        ]
        posted = api.post("/v1/meter_readings", json={"records": mine}, headers=token("ingest"))
        assert posted.status_code == 202
        batch = posted.json()["data"]
        assert batch["destination"] == "kafka" and batch["kafka"]["offset"] >= 1
        summary = drain_readings(kafka_defs, kafka_resource, pg_resource)
        assert summary.records == 5 and summary.quarantined == 1
        done = api.get(posted.headers["location"], headers=token("ingest")).json()["data"]
    assert done["status"] == "processed"
    assert (done["accepted"], done["quarantined"]) == (3, 0)


def test_meter_limits_hold_for_ingestion_review_batches_and_cached_pages(
    client: TestClient, settings: Settings
) -> None:
    meters = [m for (m,) in query(settings, "SELECT DISTINCT meter_id FROM ops.meter_readings ORDER BY 1")]
    mine, other = meters[0], meters[1]
    reading = {"meter_id": other, "reading_start": recent(4, 0), "interval_minutes": 15, "energy_kwh": 0.1}
    limited = token("ingest", "review", "read", meters=[mine])
    assert client.post("/v1/meter_readings", json=reading, headers=limited).status_code == 403
    grid = {"grid_node_id": "NODE-X", "measured_at": recent(4, 0), "frequency_hz": 50.0}
    assert client.post("/v1/grid_status", json=grid, headers=limited).status_code == 403
    # A batch is visible to the subject that sent it (and admin) only.
    posted = client.post("/v1/meter_readings", json={**reading, "meter_id": mine}, headers=limited)
    assert posted.status_code == 202
    assert (
        client.get(posted.headers["location"], headers=token("ingest", subject="someone-else")).status_code
        == 404
    )
    assert client.get(posted.headers["location"], headers=token("admin", subject="ops")).status_code == 200
    # Review: another meter's flagged reading is neither listed nor decidable with the limited token.
    with postgres_resource(settings).connect() as conn:
        conn.execute(
            "INSERT INTO ops.review_queue (batch_id, record_index, source, record_key, reasons) "
            "VALUES ('api-test-review', 0, 'meter_readings', %s, 'energy_spike') ON CONFLICT DO NOTHING",
            (f"{other}|{recent(5, 0)}",),
        )
        conn.execute(  # the flagged version, stored (a decision on a version no longer stored changes nothing)
            "INSERT INTO ops.meter_readings (meter_id, reading_start, interval_minutes, energy_kwh, "
            "record_version, batch_id, quality_flags) VALUES (%s, %s, 15, 9.5, 1, 'api-test-review', "
            "'energy_spike') ON CONFLICT (meter_id, reading_start) DO UPDATE SET batch_id = 'api-test-review'",
            (other, recent(5, 0)),
        )
    everyone = client.get("/v1/review/items", headers=token("review"), params={"limit": 10_000}).json()[
        "data"
    ]
    assert any(i["batch_id"] == "api-test-review" for i in everyone)
    seen = client.get("/v1/review/items", headers=limited, params={"limit": 10_000}).json()["data"]
    assert all(i["record_key"].startswith(f"{mine}|") for i in seen)
    decided = client.post("/v1/review/items/api-test-review/0/reject", json={"note": "n"}, headers=limited)
    assert decided.status_code == 403
    # An unlimited review token decides it: the decision, then the VEE re-run of its meter-day.
    decided = client.post(
        "/v1/review/items/api-test-review/0/approve", json={"note": "n"}, headers=token("review")
    )
    assert decided.status_code == 200
    body = decided.json()["data"]
    assert (body["status"], body["decided_by"], body["decision_note"]) == ("approved", "tester", "n")
    # the interval's status in the meter-day VEE just re-ran (the made-up batch is in no day's ledger,
    # so the series holds the reading as read)
    stored_status = query(
        settings,
        "SELECT status FROM ops.vee_readings WHERE meter_id = %s AND reading_start = %s",
        (other, recent(5, 0)),
    )
    assert [(body["vee_status"],)] == stored_status
    assert "vee_error" not in body
    # A decision whose meter-day's new series fails the VEE suite is recorded: a 200 with the decision
    # and why the series was not written (a 409 made clients take it for a decision refused).
    with postgres_resource(settings).connect() as conn:
        conn.execute(
            "INSERT INTO ops.review_queue (batch_id, record_index, source, record_key, reasons) "
            "VALUES ('api-test-review', 1, 'meter_readings', %s, 'energy_spike') ON CONFLICT DO NOTHING",
            (f"API-LONE|{recent(5, 0)}",),
        )
        conn.execute(  # the meter's one reading that day: too few for a spike limit, VEE keeps it as read
            "INSERT INTO ops.meter_readings (meter_id, reading_start, interval_minutes, energy_kwh, "
            "record_version, batch_id, quality_flags) VALUES ('API-LONE', %s, 15, 5000, 1, "
            "'api-test-review', 'energy_spike') ON CONFLICT (meter_id, reading_start) DO NOTHING",
            (recent(5, 0),),
        )
    refused = client.post(
        "/v1/review/items/api-test-review/1/approve", json={"note": "n"}, headers=token("review")
    )
    assert refused.status_code == 200, refused.text
    body = refused.json()["data"]
    assert (body["status"], body["vee_status"]) == ("approved", None)
    assert "decision is recorded" in body["vee_error"] and "not written" in body["vee_error"]
    assert query(settings, "SELECT count(*) FROM ops.vee_readings WHERE meter_id = 'API-LONE'") == [(0,)]
    # A token allowed no meter gets no rows, even after an unlimited token's page was cached.
    assert (
        client.get("/v1/consumption/daily", headers=token("read"), params={"limit": 5}).json()["count"] == 5
    )
    nothing = client.get("/v1/consumption/daily", headers=token("read", meters=[]), params={"limit": 5})
    assert nothing.status_code == 200 and nothing.json()["count"] == 0


def test_a_cursor_works_only_where_it_was_issued(client: TestClient, settings: Settings) -> None:
    page = client.get("/v1/consumption/daily", headers=token("read"), params={"limit": 1}).json()
    assert page["next_cursor"]
    foreign = client.get(
        f"/v1/meters/{a_meter(settings)}/readings",
        headers=token("read"),
        params={"cursor": page["next_cursor"]},
    )
    assert foreign.status_code == 400 and foreign.json()["error"]["code"] == "bad_cursor"
    for bad in ("garbage", "W10", page["next_cursor"][:-3]):
        response = client.get("/v1/consumption/regions", headers=token("read"), params={"cursor": bad})
        assert response.status_code == 400, (bad, response.text)


def test_a_cursor_continues_only_the_filters_it_was_issued_with(
    client: TestClient, settings: Settings
) -> None:
    """A cursor of ?region=X sent with ?region=Y paged Y's rows after X's key, silently skipping some."""
    regions = [
        r["region"] for r in client.get("/v1/consumption/regions", headers=token("read")).json()["data"]
    ]
    first, other = sorted(set(regions))[:2]
    page = client.get(
        "/v1/consumption/daily", headers=token("read"), params={"region": first, "limit": 1}
    ).json()
    assert page["next_cursor"]
    same = client.get(
        "/v1/consumption/daily",
        headers=token("read"),
        params={"region": first, "limit": 1, "cursor": page["next_cursor"]},
    )
    assert same.status_code == 200, same.text
    for params in ({"region": other}, {}):
        moved = client.get(
            "/v1/consumption/daily", headers=token("read"), params={**params, "cursor": page["next_cursor"]}
        )
        error = moved.json()["error"]
        assert (moved.status_code, error["code"]) == (400, "bad_cursor"), moved.text
        assert f"cursor was issued for other filters (region={first})" in error["message"]


def test_a_kafka_request_that_cannot_be_placed_is_processed_with_unknown_counts(
    kafka_defs: dg.Definitions,
    kafka_resource: KafkaResource,
    pg_resource: PostgresResource,
    tmp_path: Path,
) -> None:
    """Another producer's pretty-printed message (line breaks in it) in the same micro-batch: the
    request's records cannot be told apart, so its status is processed with null counts, not queued."""
    kafka_resource.ensure_topics(partitions=1)
    settings = kafka_settings(tmp_path, pg_resource, kafka_resource)
    app = create_app(settings)
    record = {"meter_id": "MTR-P", "reading_start": recent(3, 0), "interval_minutes": 15, "energy_kwh": 1.0}
    with TestClient(app) as api, kafka_resource.producer() as producer:
        app.state.sender = KafkaSender(kafka_resource, producer)
        topic = kafka_resource.topic("meter_readings")
        producer.send(topic, key=b"MTR-P", value=json.dumps(record, indent=2).encode()).get(timeout=10)
        posted = api.post(
            "/v1/meter_readings", json={**record, "reading_start": recent(3, 15)}, headers=token("ingest")
        )
        assert posted.status_code == 202
        drain_readings(kafka_defs, kafka_resource, pg_resource)
        done = api.get(posted.headers["location"], headers=token("ingest")).json()["data"]
    assert done["status"] == "processed" and done["ledger_batch_id"]
    assert done["accepted"] is None and done["quarantined"] is None


def test_hourly_takes_the_meters_local_days_and_sums_to_daily(client: TestClient, settings: Settings) -> None:
    """An analyst could select `/hourly` rows by UTC hour only, so a London day of summer time (from
    23:00 UTC the day before) never matched `/daily`'s. `from_local_date`/`to_local_date` select the
    meter's local days: a meter's hours of a day sum to its `/daily` row. A reversed range is a 422
    naming both parameters."""
    headers = token("read")
    meter, day, kwh = query(
        settings,
        "SELECT meter_id, local_date, kwh_import FROM marts.fct_consumption_daily "
        "WHERE kwh_import > 0 ORDER BY local_date, meter_id LIMIT 1",
    )[0]
    params = {"meter_id": meter, "from_local_date": str(day), "to_local_date": str(day + timedelta(days=1))}
    body = client.get("/v1/consumption/hourly", headers=headers, params={**params, "limit": 100}).json()
    assert {r["local_date"] for r in body["data"]} == {str(day)}
    assert sum(r["kwh_import"] for r in body["data"]) == pytest.approx(kwh)
    reversed_days = {"from_local_date": str(day), "to_local_date": str(day - timedelta(days=1))}
    refused = client.get("/v1/consumption/hourly", headers=headers, params=reversed_days)
    assert refused.status_code == 422
    details = refused.json()["error"]["details"]
    assert {d["field"] for d in details} == {"query.from_local_date", "query.to_local_date"}


def test_energies_and_powers_are_served_without_float_noise_and_regions_sum_the_days(
    client: TestClient, settings: Settings
) -> None:
    """A trial read `peak_demand_kw` 4.429999999999999, `error_kwh` -0.015099999999999891 and `p50_kwh`
    2.9637000000000002 in JSON and CSV (and the backtest's MAE 0.09074791304347825). Every kWh and kW
    column of the consumption and forecast endpoints is now served to at most 6 decimals (docs/api.md, Precision), and a region-day on
    /regions is the sum of its meters' days on /daily to that precision."""
    noisy = query(
        settings,
        "SELECT count(*) FROM ops.vee_readings WHERE direction = 'import' "
        "AND (energy_kwh * 60.0 / interval_minutes)::text ~ '\\.[0-9]{7,}'",
    )[0][0]
    assert noisy > 0  # the simulated readings' kW in doubles carry noise, as the trial's did
    headers = token("read")
    paths = [f"/v1/consumption/{p}" for p in ("daily", "hourly", "regions", "peaks")]
    paths += ["/v1/forecasts/load", "/v1/forecasts/accuracy"]
    checked: dict[str, int] = {}
    for path in paths:
        body = client.get(path, headers=headers, params={"limit": 10_000}).json()["data"]
        as_csv = client.get(path, headers=headers, params={"limit": 10_000, "format": "csv"}).text
        cells = [
            (name, str(value))
            for record in [*body, *csv.DictReader(io.StringIO(as_csv))]
            for name, value in record.items()
            if name.endswith(("_kwh", "_kw")) and value not in (None, "")
        ]
        assert cells, path
        long = [(name, text) for name, text in cells if int(Decimal(text).as_tuple().exponent) < -6]
        assert long == [], (path, long[:5])
        checked[path] = len(cells)
    assert checked["/v1/forecasts/load"] > 1000 and checked["/v1/consumption/peaks"] > 0
    days = client.get("/v1/consumption/daily", headers=headers, params={"limit": 10_000}).json()["data"]
    regions = client.get("/v1/consumption/regions", headers=headers, params={"limit": 10_000}).json()["data"]
    for row in regions:
        meters = [
            d
            for d in days
            if (d["region"] or "unknown", d["segment"] or "unknown", d["local_date"])
            == (row["region"], row["segment"], row["local_date"])
        ]
        assert len(meters) == row["meter_count"]
        for column in ("kwh_import", "net_kwh"):
            total = sum(Decimal(repr(d[column])) for d in meters)
            assert round(total, 6) == round(Decimal(repr(row[column])), 6), (row, column)
