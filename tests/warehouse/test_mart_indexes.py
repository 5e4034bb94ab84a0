"""The marts the data API pages through have indexes (dbt-postgres' `indexes` config and the
`ensure_indexes` post-hook, dbt_project/macros/indexes.sql), and the API's own page queries use them.

The page queries are those `datasets.query_page` runs (recorded, then EXPLAINed) on the warehouse
tests' data set, with sequential scans and sorts disabled: on so few rows a scan, or a bitmap scan and
a sort, is cheaper than an index's order, while a query no index serves still plans a Seq Scan (or a
Sort) and fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any, cast

import psycopg
import pytest
from psycopg import sql

from metrify_assets.resources import PostgresResource
from metrify_assets.serving.datasets import DATASETS, Dataset, query_page
from metrify_assets.serving.pagination import cursor_scope, encode_cursor
from tests.warehouse.test_dbt_build import build_marts, failures, run_dbt_build

pytestmark = pytest.mark.postgres

MARTS = {name: d for name, d in DATASETS.items() if d.schema == "marts"}
# A cursor's key values where a mart of the data set is empty (the forecast marts), by column type.
STAND_INS: dict[str, Any] = {
    "date": date(2026, 3, 28),
    "timestamp without time zone": datetime(2026, 3, 28, 12),
    "text": "x",
    "integer": 1,
    "bigint": 1,
}


@pytest.fixture(scope="module")
def marts(pg_resource: PostgresResource, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The marts the API serves, built from scratch (dbt's data tests are test_dbt_build's business);
    yields the dbt target directory."""
    target = tmp_path_factory.mktemp("indexes_dbt")
    build_marts(pg_resource, target, (d.table for d in MARTS.values()))
    yield target


def indexes(conn: psycopg.Connection, table: str) -> list[tuple[str, ...]]:
    """The column lists of `marts.table`'s indexes."""
    rows = conn.execute(
        """
        select array_agg(a.attname::text order by k.n)
        from pg_index as i
        cross join lateral unnest(i.indkey) with ordinality as k(attnum, n)
        join pg_attribute as a on a.attrelid = i.indrelid and a.attnum = k.attnum
        where i.indrelid = to_regclass('marts.' || quote_ident(%s))
        group by i.indexrelid
        """,
        [table],
    ).fetchall()
    return sorted(tuple(row[0]) for row in rows)


class Recorder:
    """Stands in for a connection: keeps the query `query_page` runs and returns no rows."""

    description = None

    def __init__(self) -> None:
        self.query: sql.Composable | None = None
        self.params: list[Any] = []

    @contextmanager
    def cursor(self) -> Iterator[Recorder]:
        yield self

    def execute(self, query: sql.Composable, params: list[Any]) -> None:
        self.query, self.params = query, params

    def fetchall(self) -> list[tuple[Any, ...]]:
        return []


def plan(conn: psycopg.Connection, dataset: Dataset, params: dict[str, Any], **kwargs: Any) -> str:
    """EXPLAIN of the page query the API runs for `dataset` with these filters (and path value, meters,
    cursor), sequential scans and sorts disabled."""
    recorder = Recorder()
    query_page(cast(psycopg.Connection, recorder), dataset, params, limit=1000, **kwargs)
    assert recorder.query is not None
    conn.execute("SET enable_seqscan = off")
    conn.execute("SET enable_sort = off")
    try:
        rows = conn.execute(sql.SQL("EXPLAIN ") + recorder.query, recorder.params).fetchall()
    finally:
        conn.execute("RESET enable_seqscan")
        conn.execute("RESET enable_sort")
    return "\n".join(row[0] for row in rows)


def first_row(conn: psycopg.Connection, dataset: Dataset, columns: tuple[str, ...]) -> list[Any]:
    """`columns` of the mart's first row in key order, or stand-ins of their types if it has none."""
    names = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    table = sql.Identifier("marts", dataset.table)
    row = conn.execute(
        sql.SQL("SELECT {} FROM {} ORDER BY {} LIMIT 1").format(names, table, names)
    ).fetchone()
    if row is not None:
        return list(row)
    types = dict(
        conn.execute(
            "select column_name::text, data_type::text from information_schema.columns"
            " where table_schema = 'marts' and table_name = %s",
            [dataset.table],
        ).fetchall()
    )
    return [STAND_INS[types[c]] for c in columns]


def cases(conn: psycopg.Connection, dataset: Dataset) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(name, filters, other arguments of query_page) of the pages the API serves most: the first page,
    a cursor's next page, a range of the first filter (the period), one meter's rows and a
    meter-limited token's; a dataset under a path (a node, a station) always with its path value."""
    base: dict[str, Any] = {}
    if dataset.path_filter is not None:
        (base["path_value"],) = first_row(conn, dataset, (dataset.path_filter,))
    yield "first page", {}, base
    key = first_row(conn, dataset, dataset.key)
    scope = cursor_scope(dataset.name, {"path": base.get("path_value")})
    yield "next page", {}, {**base, "cursor": encode_cursor(scope, key)}
    period = dataset.filters[0]
    (start,) = first_row(conn, dataset, (period.column,))
    yield f"{period.param}=", {period.param: start}, base
    if dataset.meter_column is not None:
        (meter,) = first_row(conn, dataset, (dataset.meter_column,))
        yield "one meter", {dataset.meter_column: meter}, base
        yield "a token's meters", {}, {**base, "meters": frozenset({meter, "MTR-999999"})}


def test_every_mart_the_api_serves_has_an_index_on_its_page_key(
    pg_resource: PostgresResource, marts: Path
) -> None:
    """Its page order (after the path's column, which every query of a path dataset fixes); a period
    filter on another column (load forecasts' local day) also bounds the order's first column, and
    has an index of its own (the incremental delete's); for a per-meter mart one leading with the
    meter."""
    with pg_resource.connect(autocommit=True) as conn:
        for dataset in MARTS.values():
            have = indexes(conn, dataset.table)
            page = (dataset.path_filter, *dataset.key) if dataset.path_filter else dataset.key
            assert any(cols[: len(page)] == page for cols in have), f"{dataset.table}: {have}"
            period = dataset.filters[0]
            if period.column != dataset.key[0]:
                assert period.bounds_utc == dataset.key[0], dataset.name
                assert any(cols[0] == period.column for cols in have), f"{dataset.table}: {have}"
            if dataset.meter_column is not None:
                assert any(cols[0] == dataset.meter_column for cols in have), f"{dataset.table}: {have}"


@pytest.mark.parametrize("name", sorted(MARTS))
def test_page_queries_use_an_index(pg_resource: PostgresResource, marts: Path, name: str) -> None:
    """No Seq Scan; pages in key order come out of the index, not a Sort; a filter on the meter, the
    path, a period or a cursor is an index condition, not a filter over the rows read (a token's
    meters may be either: the meters' rows sorted, or the key's order filtered)."""
    dataset = MARTS[name]
    with pg_resource.connect(autocommit=True) as conn:
        for case, params, kwargs in cases(conn, dataset):
            explained = plan(conn, dataset, params, **kwargs)
            where = f"{name} / {case}:\n{explained}"
            assert "Seq Scan" not in explained and "Index" in explained, where
            if case in ("first page", "next page", "one meter"):
                assert "Sort" not in explained, where
            if case not in ("first page", "a token's meters") or dataset.path_filter:
                assert "Index Cond" in explained, where


def test_an_existing_mart_gets_its_indexes_on_an_incremental_run(
    pg_resource: PostgresResource, marts: Path, tmp_path: Path
) -> None:
    """dbt-postgres creates `indexes` only with the table: a mart built before they were declared gets
    them from the post-hook on its next (incremental) run, and a further run adds no duplicate."""
    with pg_resource.connect(autocommit=True) as conn:
        declared = indexes(conn, "fct_consumption_hourly")
        assert declared == [("hour_start_utc", "meter_id"), ("meter_id", "hour_start_utc")]
        for (index,) in conn.execute(
            "select indexrelid::regclass::text from pg_index"
            " where indrelid = 'marts.fct_consumption_hourly'::regclass"
        ).fetchall():
            conn.execute(sql.SQL("DROP INDEX {}").format(sql.SQL(index)))
        assert indexes(conn, "fct_consumption_hourly") == []
        for run in ("first", "second"):
            results = run_dbt_build(
                pg_resource.get_url(),
                tmp_path / run,
                "--select",
                "fct_consumption_hourly",
                "--exclude-resource-type",
                "test",
            )
            assert not failures(results)
            assert indexes(conn, "fct_consumption_hourly") == declared, run


def _local_day_bounds_keep_every_row(
    pg_resource: PostgresResource,
    dataset: Dataset,
    series: dict[str, int],
    insert: str,
    step: timedelta,
    params: tuple[str, str],
) -> None:
    """Rows of three local days for each series (its UTC offset in hours), inserted by `insert` into
    a copy of the dataset's mart; a local-day filter (`params`: from, to) and the UTC bound it adds
    a day wider keep every row of the days asked for, and err at none of the calendar's ends."""
    dataset = replace(dataset, schema="bound_test")
    day = date(2026, 3, 28)
    before, after = day - timedelta(days=1), day + timedelta(days=1)
    first, last = params
    with pg_resource.connect(autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS bound_test CASCADE")
        conn.execute("CREATE SCHEMA bound_test")
        try:
            conn.execute(
                sql.SQL("CREATE TABLE bound_test.{t} AS SELECT * FROM marts.{t} LIMIT 0").format(
                    t=sql.Identifier(dataset.table)
                )
            )
            for name, offset_hours in series.items():
                conn.execute(
                    insert,  # type: ignore[arg-type]
                    {
                        "name": name,
                        "offset": offset_hours,
                        "first": datetime.combine(before, time()),
                        "last": datetime.combine(after + timedelta(days=1), time()) - step,
                        "step": step,
                    },
                )
            per_day = timedelta(days=1) // step
            group = dataset.meter_column or "region"  # what a series is: a meter, or a forecast's region
            for asked, days in (
                ({first: day, last: after}, [day]),
                ({first: day}, [day, after]),
                ({last: day}, [before]),
                ({first: date.min, last: date.max}, [before, day, after]),
            ):
                page = query_page(cast(psycopg.Connection, conn), dataset, asked, limit=10_000)
                rows = [dict(zip(page.columns, row, strict=True)) for row in page.rows]
                by_series = {
                    s: sorted({row["local_date"] for row in rows if row[group] == s}) for s in series
                }
                assert by_series == dict.fromkeys(series, days), asked
                assert len(rows) == len(series) * per_day * len(days), asked
        finally:
            conn.execute("DROP SCHEMA bound_test CASCADE")


def test_a_forecast_day_filter_keeps_every_quarter_hour_of_its_days(pg_resource: PostgresResource) -> None:
    """The UTC bound the forecast-day filter adds (a day wider) drops no row of the days asked for,
    from a series at UTC+14 (its day starts at 10:00 UTC the day before) to one at UTC-12 (its day ends
    at 12:00 UTC the day after), nor errs at the calendar's ends, where it adds no bound."""
    _local_day_bounds_keep_every_row(
        pg_resource,
        DATASETS["load_forecasts"],
        {"kiritimati": 14, "utc": 0, "baker": -12},
        """
        INSERT INTO bound_test.fct_load_forecast
            (region, segment, reading_start_utc, method, issued_for, local_date, horizon_hour,
             p50_kwh, selected, model_version, forecast_at_utc, last_changed_at_utc)
        SELECT %(name)s, 'residential', local_start - make_interval(hours => %(offset)s),
               'seasonal_naive', local_start::date - 1, local_start::date, 0, 1.0, true, 'v1', now(), now()
        FROM generate_series(%(first)s::timestamp, %(last)s::timestamp, %(step)s) AS local_start
        """,
        timedelta(minutes=15),
        ("from", "to"),
    )


def test_hourly_local_days_keep_every_hour_of_the_meters_days(pg_resource: PostgresResource) -> None:
    """`/v1/consumption/hourly`'s local-day filters (`from_local_date`, `to_local_date`) select a
    meter's own days, as `/daily` counts them, and their UTC bound a day wider drops no hour: a meter
    at UTC+14 and one at UTC-12 keep all 24."""
    _local_day_bounds_keep_every_row(
        pg_resource,
        DATASETS["consumption_hourly"],
        {"MTR-KIRITIMATI": 14, "MTR-UTC": 0, "MTR-BAKER": -12},
        """
        INSERT INTO bound_test.fct_consumption_hourly (meter_id, hour_start_utc, local_date)
        SELECT %(name)s, local_start - make_interval(hours => %(offset)s), local_start::date
        FROM generate_series(%(first)s::timestamp, %(last)s::timestamp, %(step)s) AS local_start
        """,
        timedelta(hours=1),
        ("from_local_date", "to_local_date"),
    )
