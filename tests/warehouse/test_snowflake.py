"""The snowflake target for real: `warehouse_load` copies `ops` into Snowflake's RAW schema through
`SnowflakeResource`, then the dbt assets build the marts there (fakesnow's server mode over HTTP).
Mart values are compared with pandas over the same VEE series, as on PostgreSQL.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
import psycopg
import pytest
from dagster_dbt import DbtCliResource, DbtProject

from metrify_assets.env import resolve_snowflake
from metrify_assets.grid.analysis import GridConfig
from metrify_assets.grid.store import run_days as run_grid_days
from metrify_assets.partitions import partition_range_tags
from metrify_assets.quality.quarantine import reason_code
from metrify_assets.resources import PostgresResource
from metrify_assets.resources.build import snowflake_resource
from metrify_assets.resources.cache_resource import RedisResource
from metrify_assets.warehouse.assets import build_warehouse_assets
from metrify_assets.warehouse.connection import environment, partition_env
from metrify_assets.warehouse.paths import DBT_PROJECT_DIR
from metrify_assets.warehouse.project import dbt_executable
from metrify_assets.warehouse.raw_copy import RAW_TABLES
from metrify_assets.warehouse.snowflake import WAREHOUSE_LOAD_KEY, warehouse_load
from metrify_assets.warehouse.translator import MetrifyDbtTranslator
from metrify_assets.warehouse.vars import dbt_vars as project_vars
from tests.warehouse.test_dbt_build import (
    DAY0,
    TIMEZONES,
    OpsData,
    dbt_build,
    expected_peak_demand,
    failures,
    insert,
    load,
    local_frame,
    make_ops_data,
)
from tests.warehouse.test_marts_keep_days_left_hot_tier import (
    ARCHIVED,
    KEPT_LOG,
    delete_archived_day,
    late_samples,
)
from tests.warehouse.vee_rows import insert_all_actual_vee, local_day_grid, vee_days

pytestmark = [pytest.mark.snowflake, pytest.mark.postgres]


def snowflake_env(server: dict[str, Any]) -> dict[str, str]:
    """The METRIFY_SNOWFLAKE_* variables that point the target and the resource at the server."""
    return {
        "METRIFY_DBT_TARGET": "snowflake",
        "METRIFY_SNOWFLAKE_ACCOUNT": server["account"],
        "METRIFY_SNOWFLAKE_USER": server["user"],
        "METRIFY_SNOWFLAKE_PASSWORD": server["password"],
        "METRIFY_SNOWFLAKE_HOST": server["host"],
        "METRIFY_SNOWFLAKE_PORT": str(server["port"]),
        "METRIFY_SNOWFLAKE_PROTOCOL": server["protocol"],
        # fakesnow cannot store comments that contain a quote; real Snowflake keeps the column docs.
        "METRIFY_DBT_PERSIST_DOCS": "false",
    }


@dataclass(frozen=True)
class SnowflakeBuild:
    data: OpsData
    result: dg.ExecuteInProcessResult
    resources: dict[str, Any]

    def query(self, sql: str) -> pd.DataFrame:
        with self.resources["snowflake"].get_connection() as conn:
            cur = conn.cursor()
            cur.execute(sql)
            columns = [c[0].lower() for c in cur.description]
            return pd.DataFrame(cur.fetchall(), columns=columns)


@pytest.fixture(scope="module")
def sf_build(
    snowflake_server: dict[str, Any], pg_resource: PostgresResource, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SnowflakeBuild]:
    data = make_ops_data()
    with environment(snowflake_env(snowflake_server)), pg_resource.connect(autocommit=True) as conn:
        load(conn, data)
        project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR, target="snowflake")
        runs = tmp_path_factory.mktemp("dbt-runs")
        dbt = build_warehouse_assets(project, runs, MetrifyDbtTranslator(source_key=WAREHOUSE_LOAD_KEY))
        resources = {
            "dbt": DbtCliResource(project_dir=project, target="snowflake", dbt_executable=dbt_executable()),
            "postgres": pg_resource,
            "redis": RedisResource(),
            "snowflake": snowflake_resource(resolve_snowflake(snowflake_env(snowflake_server))),
        }
        days = partition_range_tags(DAY0.date() - timedelta(days=1), DAY0.date() + timedelta(days=2))
        result = dg.materialize([warehouse_load, dbt], resources=resources, tags=days, raise_on_error=False)
        yield SnowflakeBuild(data, result, resources)


def test_load_and_dbt_build_succeed_with_passing_checks(sf_build: SnowflakeBuild) -> None:
    assert sf_build.result.success
    materialized = {e.asset_key for e in sf_build.result.get_asset_materialization_events()}
    assert {WAREHOUSE_LOAD_KEY, dg.AssetKey(["marts", "fct_consumption_daily"])} <= materialized
    evaluations = sf_build.result.get_asset_check_evaluations()
    assert evaluations and all(e.passed for e in evaluations)


def test_dbt_sources_hang_off_the_load(tmp_path: Path) -> None:
    project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR, target="snowflake")
    assets = build_warehouse_assets(project, tmp_path, MetrifyDbtTranslator(source_key=WAREHOUSE_LOAD_KEY))
    external = {dep for key in assets.keys for dep in assets.asset_deps[key]} - set(assets.keys)
    assert external == {WAREHOUSE_LOAD_KEY}


def test_daily_kwh_per_meter_matches_pandas(sf_build: SnowflakeBuild) -> None:
    frame = local_frame(sf_build.data.billing)
    expected = frame.groupby(["meter_id", "local_date"])["kwh_import"].sum().rename("expected")
    actual = sf_build.query(
        "SELECT meter_id, local_date, kwh_import, kwh_estimated, estimated_intervals, billing_ready "
        "FROM marts.fct_consumption_daily"
    )
    merged = actual.merge(expected.reset_index(), on=["meter_id", "local_date"], how="outer")
    assert len(merged) == len(expected) == len(actual)
    np.testing.assert_allclose(merged["kwh_import"].astype(float), merged["expected"], rtol=1e-9)
    days = vee_days(sf_build.data.vee, TIMEZONES).merge(actual, on=["meter_id", "local_date"])
    assert len(days) == len(actual)
    assert (days["estimated_intervals_x"] == days["estimated_intervals_y"]).all()
    assert (days["billing_ready_x"] == days["billing_ready_y"]).all()
    np.testing.assert_allclose(days["kwh_estimated"].astype(float), days["estimated_kwh"], atol=1e-9)


def test_peak_demand_matches_pandas(sf_build: SnowflakeBuild) -> None:
    expected = expected_peak_demand(sf_build.data.billing)
    actual = sf_build.query("SELECT meter_id, local_date, peak_demand_kw FROM marts.fct_peak_demand")
    merged = expected.merge(actual, on=["meter_id", "local_date"])
    assert len(merged) == len(expected) == len(actual)
    np.testing.assert_allclose(merged["peak_demand_kw"].astype(float), merged["demand_kw"], rtol=1e-9)


def test_dim_meter_versions_from_the_snapshot(sf_build: SnowflakeBuild) -> None:
    versions = sf_build.query("SELECT meter_id, version_number, is_current FROM marts.dim_meter")
    assert sorted(versions["meter_id"]) == ["MTR-1", "MTR-2", "MTR-3"]
    assert versions["is_current"].all()


def test_grid_marts_carry_the_grid_stability_figures(sf_build: SnowflakeBuild) -> None:
    """The RAW copies of ops.grid_stability and ops.grid_state_events reach the grid marts."""
    hours = sf_build.query("SELECT grid_node_id, system_state, risk_components FROM marts.fct_grid_stability")
    assert len(hours) == 4 and hours["system_state"].notna().all()
    assert set(hours["system_state"]) == {"normal", "alert", "emergency"}
    assert set(hours["risk_components"]) == {"frequency,voltage"}
    events = sf_build.query(
        "SELECT state, rule, duration_minutes, is_open FROM marts.fct_grid_state_events "
        "WHERE grid_node_id = 'GN-3' ORDER BY started_at_utc"
    )
    assert events["state"].tolist() == ["alert", "emergency"]
    assert events["duration_minutes"].astype(float).tolist() == [8.0, 5.0]
    assert not events["is_open"].any()


def test_load_is_idempotent_and_incremental(sf_build: SnowflakeBuild, pg_resource: PostgresResource) -> None:
    """Runs after the mart tests: a second load changes nothing; a new reading arrives as exactly one
    more row."""

    def counts() -> dict[str, int]:
        return {
            t.name: int(sf_build.query(f"SELECT count(*) AS n FROM raw.{t.name}")["n"].item())
            for t in RAW_TABLES
        }

    before = counts()
    assert before["meter_readings"] == len(sf_build.data.readings)
    assert dg.materialize([warehouse_load], resources=sf_build.resources).success
    assert counts() == before
    with pg_resource.connect(autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO ops.meter_readings (meter_id, reading_start, interval_minutes, energy_kwh, "
            "record_version, batch_id, ingested_at) VALUES ('MTR-1', %s, 15, 0.5, 1, 'B-new', now())",
            (DAY0 - timedelta(days=1),),
        )
    result = dg.materialize([warehouse_load], resources=sf_build.resources)
    copied = result.get_asset_materialization_events()[0].materialization.metadata["rows_copied"]
    assert counts()["meter_readings"] == before["meter_readings"] + 1
    assert copied.value < sum(before.values())

    # VEE re-processes a meter-day and drops an interval of it: the raw copy replaces the whole day.
    with pg_resource.connect(autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(
            "DELETE FROM ops.vee_readings WHERE (meter_id, reading_start) = "
            "(SELECT meter_id, min(reading_start) FROM ops.vee_readings WHERE meter_id = 'MTR-1' GROUP BY meter_id)"
        )
        cur.execute(
            "UPDATE ops.vee_readings SET processed_at = now() WHERE meter_id = 'MTR-1' AND local_date = %s",
            (DAY0.date(),),
        )
        day_intervals = cur.rowcount
    assert dg.materialize([warehouse_load], resources=sf_build.resources).success
    assert counts()["vee_readings"] == before["vee_readings"] - 1
    raw_day = sf_build.query(
        f"SELECT count(*) AS n FROM raw.vee_readings WHERE meter_id = 'MTR-1' AND local_date = '{DAY0.date()}'"
    )
    assert int(raw_day["n"].item()) == day_intervals == 95

    # A raw copy made before a migration added columns (stage timings; the enrichment's stamp, now
    # its change column) gains them, and the copy goes on.
    sf = sf_build.resources["snowflake"]
    with sf.get_connection() as conn:
        cur = conn.cursor()
        cur.execute("ALTER TABLE raw.ingest_ledger DROP COLUMN stage_seconds")
        cur.execute("ALTER TABLE raw.enriched_meter_readings DROP COLUMN enriched_at")
    assert dg.materialize([warehouse_load], resources=sf_build.resources).success
    assert counts() == {
        **before,
        "meter_readings": before["meter_readings"] + 1,
        "vee_readings": before["vee_readings"] - 1,
    }
    stamped = sf_build.query(
        "SELECT count(*) AS n FROM raw.enriched_meter_readings WHERE enriched_at IS NULL"
    )
    assert int(stamped["n"].item()) == 0  # copied in full once, by its new change column


def test_quarantine_reasons_count_by_code_on_snowflake(sf_build: SnowflakeBuild) -> None:
    """dbt's `reason_code` macro in Snowflake's SQL gives `reason_code`'s codes: no note, no parser detail."""
    reasons = sf_build.data.quarantine["reasons"].str.split(",").explode().map(reason_code)
    actual = sf_build.query(
        "SELECT reason, sum(record_count) AS n FROM marts.fct_quarantine_reasons_daily GROUP BY 1"
    )
    assert (
        dict(zip(actual["reason"], actual["n"].astype(int), strict=True)) == reasons.value_counts().to_dict()
    )


def test_daily_quality_score_weighs_batches_by_records_on_snowflake(sf_build: SnowflakeBuild) -> None:
    """The same SQL weighs each batch's score by its records on Snowflake: DAY0's meter batches of 100
    and 50 records scored 99 and 90 give 96, not their plain mean 94.5."""
    actual = sf_build.query(
        "SELECT activity_date, source, avg_quality_score FROM marts.fct_data_quality_daily "
        "WHERE avg_quality_score IS NOT NULL"
    )
    got = {(str(d), s): float(v) for d, s, v in actual.itertuples(index=False)}
    assert got == pytest.approx(
        {
            (str(DAY0.date()), "meter_readings"): 96.0,
            (str(DAY0.date()), "grid_status"): 97.5,
            (str((DAY0 + timedelta(days=1)).date()), "meter_readings"): 88.0,
        }
    )


NEW_DAY = DAY0.date() + timedelta(days=3)  # after the first build's days
REBUILT_DAY = DAY0.date() + timedelta(days=1)  # VEE re-processes MTR-2's day
REBUILT_KWH = (
    "SELECT kwh_import FROM marts.fct_consumption_daily "
    f"WHERE meter_id = 'MTR-2' AND local_date = '{REBUILT_DAY}'"
)
# The run without days rebuilds these (the other incremental models follow the same macros).
WATERMARK_MARTS = ("fct_consumption_daily", "fct_grid_stability", "fct_weather_conditions")
# DAY0's hours that the lifecycle deletes from `ops` and a late sample then reaches.
KEPT_HOURS = (
    "SELECT * FROM marts.fct_grid_stability "
    f"WHERE grid_node_id = 'GN-3' AND hour_start_utc = '{ARCHIVED} 03:00'",
    "SELECT * FROM marts.fct_weather_conditions "
    f"WHERE station_id = 'WS-N' AND hour_start_utc = '{ARCHIVED} 06:00'",
)
# fakesnow cannot create dbt-snowflake's scratch relation for delete+insert, a temporary table in the
# model's schema; a transient table is built and dropped the same way (docs/warehouse.md#snowflake).
INCREMENTAL_VARS = {**project_vars(), "snowflake_tmp_relation_type": "transient"}
# MTR-3's first local day (New York: DAY0's first UTC hours), withdrawn whole: a corrected file no
# longer holds its readings, and VEE, which now starts the meter on DAY0, has no row for it.
EMPTIED_DAY = DAY0.date() - timedelta(days=1)
EMPTIED_UTC_END = DAY0 + timedelta(hours=4)


def new_day(conn: psycopg.Connection) -> pd.DataFrame:
    """A local day of readings per meter (VEE keeps them as read), grid samples and observations on
    NEW_DAY; returns the readings."""
    rng = np.random.default_rng(11)
    readings = pd.concat(
        pd.DataFrame({"meter_id": meter, "reading_start": local_day_grid(NEW_DAY, tz, 15)})
        for meter, tz in TIMEZONES.items()
    )
    kwh = rng.uniform(0.05, 1.5, len(readings)).round(4)
    readings = readings.assign(interval_minutes=15, energy_kwh=kwh, direction="import")
    insert(conn, "meter_readings", readings, {"record_version": 1, "batch_id": "B-new-day"})
    insert_all_actual_vee(conn, readings, TIMEZONES)
    midnight = datetime.combine(NEW_DAY, time(), UTC)
    grid = pd.DataFrame(
        {
            "grid_node_id": "GN-1",
            "measured_at": [midnight + timedelta(minutes=5 * i) for i in range(12)],
            "frequency_hz": [50.0, 50.02, 49.97, 50.11, 50.0, 49.99] * 2,
            "voltage_v": 230.0,
            "load_mw": 12.0,
        }
    )
    insert(conn, "grid_status", grid, {"record_version": 1, "batch_id": "B-new-day"})
    run_grid_days(conn, NEW_DAY, NEW_DAY, GridConfig())
    weather = pd.DataFrame(
        {
            "station_id": ["WS-N", "WS-S"],
            "observed_at": [midnight + timedelta(hours=6)] * 2,
            "temperature_c": [9.0, 21.0],
        }
    )
    extra = {"humidity_pct": 70.0, "pressure_hpa": 1012.0, "wind_speed_ms": 4.0, "precipitation_mm": 0.2}
    insert(conn, "weather_observations", weather, extra | {"record_version": 1, "batch_id": "W-new-day"})
    return readings


def incremental_marts(build: SnowflakeBuild, target: Path) -> dict[str, pd.DataFrame]:
    """Every incremental model's rows (the manifest's), in one order."""
    manifest = json.loads((target / "manifest.json").read_text())
    rows = {}
    for node in manifest["nodes"].values():
        if node["resource_type"] == "model" and node["config"]["materialized"] == "incremental":
            frame = build.query(f"SELECT * FROM {node['relation_name']}")
            rows[node["name"]] = frame.sort_values(list(frame.columns)).reset_index(drop=True)
    return rows


def test_incremental_builds_match_a_full_build_and_keep_days_left_hot_tier(
    sf_build: SnowflakeBuild, snowflake_server: dict[str, Any], pg_resource: PostgresResource, tmp_path: Path
) -> None:
    """Runs last. Dagster's daily run on Snowflake, by hand: after the first build a new day arrives,
    VEE re-processes a day, a withdrawal empties MTR-3's first day, and the data lifecycle deletes
    DAY0's grid samples and observations from PostgreSQL before a late one of each lands. A run over
    the days (the emptied meter-day leaves the marts: strategy `rebuilt_days`) (delete+insert through
    dbt-snowflake's scratch relation) and then one without days (the watermark's window) give every
    incremental model the rows a full build gives when the late samples of the deleted day never came:
    the grid and weather marts keep that day as stored, on Snowflake as on PostgreSQL."""
    env = {**os.environ, **snowflake_env(snowflake_server)}
    stored = [sf_build.query(sql) for sql in KEPT_HOURS]
    assert [len(hour) for hour in stored] == [1, 1]
    rebuilt_before = sf_build.query(REBUILT_KWH)
    with pg_resource.connect(autocommit=True) as conn:
        readings = new_day(conn)
        reprocessed = conn.execute(
            "UPDATE ops.vee_readings SET energy_kwh = energy_kwh + 0.1, processed_at = now() "
            "WHERE meter_id = 'MTR-2' AND local_date = %s AND status = 'actual'",
            (REBUILT_DAY,),
        ).rowcount
        conn.execute(
            "UPDATE ops.vee_days SET processed_at = now() WHERE meter_id = 'MTR-2' AND local_date = %s",
            (REBUILT_DAY,),
        )
        delete_archived_day(conn)
        late_samples(conn)
        withdrawn = conn.execute(
            "DELETE FROM ops.meter_readings WHERE meter_id = 'MTR-3' AND reading_start < %s",
            (EMPTIED_UTC_END,),
        ).rowcount
        for table in ("vee_readings", "vee_days"):
            conn.execute(
                f"DELETE FROM ops.{table} WHERE meter_id = 'MTR-3' AND local_date = %s", (EMPTIED_DAY,)
            )
    assert withdrawn > 0

    def run(days: tuple[date, date] | None, *flags: str) -> str:
        """dbt over the models; returns what dbt logged."""
        log = tmp_path / "dbt.log"
        before = log.read_text() if log.exists() else ""
        args = ("--vars", json.dumps(INCREMENTAL_VARS), "--exclude-resource-type", "test", "snapshot", *flags)
        assert failures(dbt_build({**env, **partition_env(days)}, tmp_path, *args)) == {}
        return log.read_text()[len(before) :]

    assert dg.materialize([warehouse_load], resources=sf_build.resources).success
    # The raw copy keeps rows `ops` deleted, and a meter-day VEE no longer writes leaves no changed row
    # to replace it by: the withdrawal is taken out of RAW here, as a full build would not see it.
    with sf_build.resources["snowflake"].get_connection() as conn:
        cur = conn.cursor()
        cur.execute(
            f"DELETE FROM raw.meter_readings WHERE meter_id = 'MTR-3' AND reading_start < '{EMPTIED_UTC_END}'"
        )
        for table in ("vee_readings", "vee_days"):
            cur.execute(f"DELETE FROM raw.{table} WHERE meter_id = 'MTR-3' AND local_date = '{EMPTIED_DAY}'")
    emptied = (
        "SELECT count(*) AS n FROM marts.fct_consumption_daily "
        f"WHERE meter_id = 'MTR-3' AND local_date = '{EMPTIED_DAY}'"
    )
    assert int(sf_build.query(emptied)["n"].item()) == 1
    # From the first build's first day: the earlier test adds a reading on the day before DAY0.
    logged = run((DAY0.date() - timedelta(days=1), NEW_DAY))
    assert f"fct_grid_stability: kept as stored 1 day(s) of grid_status {KEPT_LOG}" in logged
    assert f"fct_weather_conditions: kept as stored 1 day(s) of weather_observations {KEPT_LOG}" in logged
    for sql, hour in zip(KEPT_HOURS, stored, strict=True):
        pd.testing.assert_frame_equal(sf_build.query(sql), hour)
    rebuilt = sf_build.query(REBUILT_KWH)
    assert float(rebuilt["kwh_import"].item()) == pytest.approx(
        float(rebuilt_before["kwh_import"].item()) + 0.1 * reprocessed
    )
    expected = local_frame(readings).groupby(["meter_id", "local_date"])["kwh_import"].sum()
    new = sf_build.query(
        f"SELECT meter_id, local_date, kwh_import FROM marts.fct_consumption_daily WHERE local_date = '{NEW_DAY}'"
    )
    got = new.set_index(["meter_id", "local_date"])["kwh_import"].astype(float)
    assert got.to_dict() == pytest.approx(expected.to_dict())
    assert int(sf_build.query(emptied)["n"].item()) == 0  # the emptied meter-day left the marts
    partitioned = incremental_marts(sf_build, tmp_path)

    logged = run(None, "--select", *WATERMARK_MARTS)
    assert KEPT_LOG in logged
    unpartitioned = incremental_marts(sf_build, tmp_path)

    # The reference: the late samples of the deleted day gone from the raw copy too (the copy keeps
    # the day's other rows, as it keeps every row `ops` deletes), every model built afresh.
    with sf_build.resources["snowflake"].get_connection() as conn:
        cur = conn.cursor()
        cur.execute("DELETE FROM raw.grid_status WHERE batch_id = 'B-late'")
        cur.execute("DELETE FROM raw.weather_observations WHERE batch_id = 'W-late' AND station_id = 'WS-N'")
    run(None, "--full-refresh")
    full = incremental_marts(sf_build, tmp_path)
    assert all(len(full[name]) for name in WATERMARK_MARTS)
    for name, rows in full.items():
        pd.testing.assert_frame_equal(partitioned[name], rows, obj=f"{name} after the run over days")
        if name in WATERMARK_MARTS:
            pd.testing.assert_frame_equal(unpartitioned[name], rows, obj=f"{name} after the run without days")
