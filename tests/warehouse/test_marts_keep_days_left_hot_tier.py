"""The marts built from hot grid samples and weather observations keep a day the data lifecycle deleted
from PostgreSQL, even when a late sample for that day arrives.

The lifecycle deletes an archived day's hot rows and records it in `ops.lifecycle_days`
(`hot_deleted_at`); a late sample for the day still lands in `ops`. An incremental run, partitioned
(Dagster's days) or not (`dbt build` by hand), must not rebuild the day's hours from that one sample:
fct_grid_stability and fct_weather_conditions keep what they stored, and the build's log names the day.
Once `metrify restore` brings the day back (`restored_at` later than `hot_deleted_at`), a run rebuilds
it from the restored rows and the late sample.
"""

from __future__ import annotations

import os
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import psycopg
import pytest

from metrify_assets.resources import PostgresResource
from metrify_assets.resources.cache_resource import RedisResource
from metrify_assets.warehouse.connection import dbt_env_from_url, partition_env
from metrify_assets.warehouse.definitions import build_defs
from tests.warehouse.test_assets import warehouse_assets
from tests.warehouse.test_dbt_build import DAY0, OpsData, dbt_build, failures, insert, load, make_ops_data

pytestmark = pytest.mark.postgres

ARCHIVED = DAY0.date()  # every grid sample and the first day of weather
NEXT = ARCHIVED + timedelta(days=1)  # weather only, still hot
MARTS = ("--select", "fct_grid_stability", "fct_weather_conditions")
ROWS = {
    "fct_grid_stability": "SELECT * FROM marts.fct_grid_stability WHERE hour_start_utc < %(end)s "
    "ORDER BY grid_node_id, hour_start_utc",
    "fct_weather_conditions": "SELECT * FROM marts.fct_weather_conditions WHERE hour_start_utc < %(end)s "
    "ORDER BY station_id, hour_start_utc",
}
KEPT_LOG = "whose rows left PostgreSQL (data lifecycle, not restored): " + ARCHIVED.isoformat()


def archived_rows(conn: psycopg.Connection) -> dict[str, list[tuple[Any, ...]]]:
    end = DAY0.replace(tzinfo=None) + timedelta(days=1)
    with conn.cursor() as cur:
        return {mart: cur.execute(sql, {"end": end}).fetchall() for mart, sql in ROWS.items()}


def build(url: str, target: Path, days: tuple[date, date] | None, *flags: str) -> str:
    """The two marts (no data tests), partitioned over `days` or not; returns what the run logged."""
    log = target / "dbt.log"
    before = log.read_text() if log.exists() else ""
    env = {**os.environ, **dbt_env_from_url(url), "METRIFY_DBT_TARGET": "postgres", **partition_env(days)}
    assert failures(dbt_build(env, target, *flags, "--exclude-resource-type", "test")) == {}
    return log.read_text()[len(before) :]


def delete_archived_day(conn: psycopg.Connection) -> None:
    """What `metrify lifecycle run` does to a day past the hot window: its hot rows deleted, the deletion
    recorded in ops.lifecycle_days."""
    with conn.cursor() as cur:
        for dataset, column in (("grid_status", "measured_at"), ("weather_observations", "observed_at")):
            cur.execute(
                f"DELETE FROM ops.{dataset} WHERE ({column} AT TIME ZONE 'UTC')::date = %s", (ARCHIVED,)
            )
            cur.execute(
                "INSERT INTO ops.lifecycle_days (dataset, day, tier, storage_class, object_key, manifest_key, "
                "row_count, bytes, checksum, sha256, verified_at, moved_at, hot_deleted_at, hot_rows_deleted) "
                "VALUES (%s, %s, 'warm', 'STANDARD', 'k', 'm', %s, 1, 'c', 's', now(), now(), now(), %s)",
                (dataset, ARCHIVED, cur.rowcount, cur.rowcount),
            )
    conn.commit()


def late_samples(conn: psycopg.Connection) -> None:
    """A late grid sample and a late observation for the archived day, and one for the hot day after it."""
    minute = timedelta(seconds=30)
    grid = pd.DataFrame(
        {
            "grid_node_id": ["GN-3"],
            "measured_at": [DAY0 + timedelta(hours=3) + minute],
            "frequency_hz": [50.4],
            "voltage_v": [231.0],
            "load_mw": [99.0],
        }
    )
    insert(conn, "grid_status", grid, {"record_version": 1, "batch_id": "B-late"})
    weather = pd.DataFrame(
        {
            "station_id": ["WS-N", "WS-S"],
            "observed_at": [DAY0 + timedelta(hours=6) + minute, DAY0 + timedelta(days=1, hours=6) + minute],
            "temperature_c": [40.0, 40.0],
        }
    )
    insert(conn, "weather_observations", weather, {"record_version": 1, "batch_id": "W-late"})
    conn.commit()


def restore(conn: psycopg.Connection, data: OpsData) -> None:
    """What `metrify restore` does: the day's rows back in `ops`, `restored_at` after the deletion."""
    grid_day = pd.to_datetime(data.grid["measured_at"], utc=True).dt.date == ARCHIVED
    insert(conn, "grid_status", data.grid[grid_day], {"record_version": 1, "batch_id": "B-3"})
    weather_day = pd.to_datetime(data.weather["observed_at"], utc=True).dt.date == ARCHIVED
    insert(
        conn,
        "weather_observations",
        data.weather[weather_day],
        {"humidity_pct": 80.0, "pressure_hpa": 1010.0, "wind_speed_ms": 3.0, "precipitation_mm": 0.0}
        | {"record_version": 1, "batch_id": "W-1"},
    )
    conn.execute("UPDATE ops.lifecycle_days SET restored_at = now() + interval '1 second'")
    conn.commit()


def count(conn: psycopg.Connection, sql: str) -> int:
    row = conn.execute(sql).fetchone()
    assert row is not None
    return int(row[0])


GN3_HOUR = (
    "SELECT sample_count FROM marts.fct_grid_stability "
    f"WHERE grid_node_id = 'GN-3' AND hour_start_utc = '{ARCHIVED} 03:00'"
)
WSN_HOUR = (
    "SELECT observation_count FROM marts.fct_weather_conditions "
    f"WHERE station_id = 'WS-N' AND hour_start_utc = '{ARCHIVED} 06:00'"
)
WSS_NEXT_HOUR = (
    "SELECT observation_count FROM marts.fct_weather_conditions "
    f"WHERE station_id = 'WS-S' AND hour_start_utc = '{NEXT} 06:00'"
)


def test_a_late_sample_does_not_rebuild_a_day_deleted_from_the_hot_tier(
    pg_resource: PostgresResource, tmp_path: Path
) -> None:
    url, target = pg_resource.get_url(), tmp_path / "dbt"
    data = make_ops_data()
    with pg_resource.connect(autocommit=True) as conn:
        load(conn, data)
        build(
            url, target, None, "--full-refresh", "--select", "+fct_grid_stability", "+fct_weather_conditions"
        )
        before = archived_rows(conn)
        assert len(before["fct_grid_stability"]) == 4 and len(before["fct_weather_conditions"]) == 8
        assert (count(conn, GN3_HOUR), count(conn, WSN_HOUR), count(conn, WSS_NEXT_HOUR)) == (40, 1, 1)

        delete_archived_day(conn)
        late_samples(conn)

        # A partitioned run over the archived day (Dagster's run for the late sample's partition).
        logged = build(url, target, (ARCHIVED, ARCHIVED), *MARTS)
        assert archived_rows(conn) == before
        assert f"fct_grid_stability: kept as stored 1 day(s) of grid_status {KEPT_LOG}" in logged
        assert f"fct_weather_conditions: kept as stored 1 day(s) of weather_observations {KEPT_LOG}" in logged

        # A run without days (`dbt build` by hand) recomputes every hour but the archived day's.
        logged = build(url, target, None, *MARTS)
        assert archived_rows(conn) == before
        assert KEPT_LOG in logged
        assert count(conn, WSS_NEXT_HOUR) == 2  # the day after is hot: its late observation counts

        # Restored: the day is hot again, and rebuilt from its rows and the late ones.
        restore(conn, data)
        logged = build(url, target, (ARCHIVED, ARCHIVED), *MARTS)
        assert KEPT_LOG not in logged
        assert (count(conn, GN3_HOUR), count(conn, WSN_HOUR)) == (41, 2)
        rebuilt = archived_rows(conn)
        build(url, target, None, *MARTS)
        assert archived_rows(conn) == rebuilt


def test_the_dagster_run_says_which_days_its_marts_kept(pg_resource: PostgresResource) -> None:
    """The warehouse asset's run over the archived day logs the days each mart kept and puts them in
    the mart's materialization (`kept_as_stored`); a mart that kept none has no such entry."""
    resources = {**(build_defs().resources or {}), "postgres": pg_resource, "redis": RedisResource()}
    with pg_resource.connect(autocommit=True) as conn:
        load(conn, make_ops_data())
        conn.execute("DROP SCHEMA IF EXISTS marts CASCADE")  # another module's marts: built afresh
        assert dg.materialize([warehouse_assets()], resources=resources, partition_key=str(ARCHIVED)).success
        delete_archived_day(conn)
        late_samples(conn)
        result = dg.materialize([warehouse_assets()], resources=resources, partition_key=str(ARCHIVED))
    assert result.success
    metadata = {e.asset_key: e.materialization.metadata for e in result.get_asset_materialization_events()}
    kept = {key.path[-1]: m["kept_as_stored"] for key, m in metadata.items() if "kept_as_stored" in m}
    assert kept == {
        "fct_grid_stability": dg.TextMetadataValue(
            f"fct_grid_stability: kept as stored 1 day(s) of grid_status {KEPT_LOG}"
        ),
        "fct_weather_conditions": dg.TextMetadataValue(
            f"fct_weather_conditions: kept as stored 1 day(s) of weather_observations {KEPT_LOG}"
        ),
    }
