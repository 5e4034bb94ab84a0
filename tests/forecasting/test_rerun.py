"""`load_forecast` re-run on real PostgreSQL as the trial ran it: two series with two days of load
(2026-03-28..29), nothing on 03-30..31, and one reading of north/commercial on 04-01.

The partition 03-31 forecasts 04-01, which no method can (no yesterday, no last week) while the
backtest still scored persistence on 03-29: every re-run of it failed on load_forecast_backtests_pkey.
The partition 04-01 forecasts 04-02 from the one reading beside a series with nothing: it crashed
drawing the chart (numpy's isfinite on object P10/P90). A partition whose readings left PostgreSQL is
skipped, as `vee_meter_readings` skips it: what earlier runs stored for it stands."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg
import pytest

from metrify_assets.resources import PostgresResource
from metrify_assets.storage.migrate import truncate_ops
from tests.forecasting import test_marts as marts
from tests.warehouse.test_dbt_build import insert
from tests.warehouse.vee_rows import insert_all_actual_vee

pytestmark = pytest.mark.postgres

METERS = pd.DataFrame(
    {
        "meter_id": ["C-1", "I-1"],
        "segment": ["commercial", "industrial"],
        "region": ["north", "north"],
        "timezone": ["UTC", "UTC"],
    }
)
GAPPY = date(2026, 3, 31)  # forecasts 04-01: no method can
SPARSE = date(2026, 4, 1)  # one reading: forecasts 04-02 for north/commercial only
ONE_READING = datetime(2026, 4, 1, 10, 0, tzinfo=UTC)
CONFIG = {"window_days": 56, "backtest_days": 7, "workers": 1}


def readings() -> pd.DataFrame:
    stamps = pd.date_range(
        datetime(2026, 3, 28, tzinfo=UTC), datetime(2026, 3, 30, tzinfo=UTC), freq="15min"
    )[:-1]
    rng = np.random.default_rng(5)
    frames = [
        pd.DataFrame(
            {
                "meter_id": meter,
                "reading_start": stamps,
                "energy_kwh": np.round(rng.uniform(0.5, 2.0, len(stamps)), 3),
            }
        )
        for meter in METERS["meter_id"]
    ]
    frames.append(pd.DataFrame({"meter_id": ["C-1"], "reading_start": [ONE_READING], "energy_kwh": [3.0]}))
    return pd.concat(frames, ignore_index=True).assign(interval_minutes=15, batch_id="T-1")


def materialise(pg_resource: PostgresResource, lake: str, day: date) -> dict[str, Any]:
    return marts.materialise(pg_resource, lake, day, CONFIG)


@pytest.fixture(scope="module")
def conn(pg_resource: PostgresResource) -> Iterator[psycopg.Connection]:
    with pg_resource.connect(autocommit=True) as c:
        truncate_ops(c)
        insert(c, "meters", METERS, {})
        insert_all_actual_vee(c, readings(), dict.fromkeys(METERS["meter_id"], "UTC"))
        yield c


def stored(conn: psycopg.Connection, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in conn.execute(sql).fetchall()]


def test_a_day_no_method_can_forecast_runs_again_and_again(
    conn: psycopg.Connection, pg_resource: PostgresResource, tmp_path: Path
) -> None:
    """What an earlier run stored for 04-01 (made when 03-30..31 still had load) stands: the re-run has
    nothing to recompute it from. Before, the backtest rows of such a day were copied in again on top
    of the stored ones."""
    earlier = pd.DataFrame(
        {
            "region": "north",
            "segment": "commercial",
            "reading_start": [datetime(2026, 4, 1, tzinfo=UTC)],
            "local_date": date(2026, 4, 1),
            "issued_for": GAPPY,
            "horizon_hour": 0,
            "method": "persistence",
            "p50_kwh": 1.25,
            "selected": True,
            "model_version": "persistence-v1@earlier",
        }
    )
    insert(conn, "load_forecasts", earlier, {})
    insert(
        conn,
        "load_forecast_backtests",
        earlier[["region", "segment", "local_date", "method", "selected", "model_version"]],
        {"origins": 7, "intervals": 672},
    )
    insert(
        conn,
        "load_actuals",
        pd.DataFrame(
            {
                "region": ["north"],
                "segment": ["commercial"],
                "reading_start": [datetime(2026, 3, 31, 12, tzinfo=UTC)],
                "local_date": [GAPPY],
                "energy_kwh": [0.75],
            }
        ),
        {},
    )
    for _ in range(2):
        meta = materialise(pg_resource, str(tmp_path), GAPPY)
        assert meta["series_days"] == 2 and meta["series_days_skipped"] == 2 and meta["rows"] == 0
        assert "no load on 2026-03-31 (persistence)" in meta["skipped"]
    assert stored(conn, "SELECT region, segment, p50_kwh, model_version FROM ops.load_forecasts") == [
        ("north", "commercial", 1.25, "persistence-v1@earlier")
    ]
    assert stored(conn, "SELECT model_version, origins FROM ops.load_forecast_backtests") == [
        ("persistence-v1@earlier", 7)
    ]
    assert stored(conn, "SELECT local_date, energy_kwh FROM ops.load_actuals") == [(GAPPY, 0.75)]


def test_a_sparse_day_beside_an_empty_series_is_forecast_and_charted(
    conn: psycopg.Connection, pg_resource: PostgresResource, tmp_path: Path
) -> None:
    for _ in range(2):
        meta = materialise(pg_resource, str(tmp_path), SPARSE)
        assert meta["series_days"] == 2 and meta["series_days_skipped"] == 1 and "chart" in meta
        assert "| north | industrial | 2026-04-02 | no forecast: no load on 2026-04-01" in meta["skipped"]
    assert stored(
        conn,
        "SELECT segment, method, count(*), count(p50_kwh) FROM ops.load_forecasts "
        "WHERE local_date = '2026-04-02' GROUP BY 1, 2",
    ) == [("commercial", "persistence", 96, 1)]
    assert stored(
        conn, "SELECT segment, energy_kwh FROM ops.load_actuals WHERE local_date = '2026-04-01'"
    ) == [("commercial", 3.0)]


def test_a_day_that_left_postgresql_is_skipped_and_its_rows_stand(
    conn: psycopg.Connection, pg_resource: PostgresResource, tmp_path: Path
) -> None:
    """Runs after the one above (definition order): 04-01's readings leave the hot tier."""
    before = stored(conn, "SELECT * FROM ops.load_forecasts ORDER BY region, segment, reading_start, method")
    conn.execute("DELETE FROM ops.vee_readings WHERE local_date = %s", (SPARSE,))
    conn.execute(
        "INSERT INTO ops.lifecycle_days (dataset, day, tier, storage_class, object_key, manifest_key, row_count, "
        "bytes, checksum, sha256, verified_at, moved_at, hot_deleted_at) VALUES ('meter_readings', %s, 'warm', "
        "'STANDARD', 'k', 'm', 1, 1, 'c', 's', now(), now(), now())",
        (SPARSE,),
    )
    meta = materialise(pg_resource, str(tmp_path), SPARSE)
    assert meta["partitions_skipped"] == "2026-04-01 (left PostgreSQL)" and meta["series_days"] == 0
    after = stored(conn, "SELECT * FROM ops.load_forecasts ORDER BY region, segment, reading_start, method")
    assert after == before and sum(1 for r in after if r[3] == date(2026, 4, 2)) == 96
    assert stored(conn, "SELECT count(*) FROM ops.load_actuals WHERE local_date = '2026-04-01'") == [(1,)]


def test_a_day_not_over_yet_makes_no_forecast_and_no_actuals(
    conn: psycopg.Connection, pg_resource: PostgresResource, tmp_path: Path
) -> None:
    """`metrify run` over today's partition (readings posted this hour) forecast tomorrow from part of
    today: a trial saw 0.72 kWh for a network that uses about 15,000 a day. Today is skipped; yesterday,
    which is over, still forecasts today."""
    today = datetime.now(UTC).date()
    yesterday = today - timedelta(days=1)
    stamps = pd.date_range(
        pd.Timestamp(yesterday, tz=UTC), pd.Timestamp(today, tz=UTC) + pd.Timedelta(hours=2), freq="15min"
    )
    recent = pd.DataFrame({"meter_id": "C-1", "reading_start": stamps, "energy_kwh": 1.0}).assign(
        interval_minutes=15, batch_id="T-now"
    )
    insert_all_actual_vee(conn, recent, dict.fromkeys(METERS["meter_id"], "UTC"))
    meta = materialise(pg_resource, str(tmp_path), today)
    assert meta["partitions_skipped"] == f"{today} (not over yet)" and meta["series_days"] == 0
    tomorrow = today + timedelta(days=1)
    assert stored(conn, f"SELECT count(*) FROM ops.load_forecasts WHERE local_date = '{tomorrow}'") == [(0,)]
    assert stored(conn, f"SELECT count(*) FROM ops.load_actuals WHERE local_date = '{today}'") == [(0,)]
    meta = materialise(pg_resource, str(tmp_path), yesterday)
    assert meta["partitions_skipped"] == "none" and meta["series_days"] > 0
    assert stored(conn, f"SELECT count(*) > 0 FROM ops.load_forecasts WHERE local_date = '{today}'") == [
        (True,)
    ]
