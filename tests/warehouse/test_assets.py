"""The dbt models as Dagster assets: they load with the right lineage, and materialise on Postgres."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import dagster as dg
import pandas as pd
import psycopg
import pytest

from metrify_assets.errors import root_error
from metrify_assets.partitions import partition_range_tags
from metrify_assets.resources import PostgresResource
from metrify_assets.resources.cache_resource import RedisResource
from metrify_assets.resources.lake import Lake
from metrify_assets.warehouse.definitions import build_defs
from metrify_assets.warehouse.docs import DOCS_KEY, generate_docs
from metrify_assets.warehouse.paths import WAREHOUSE_GROUP
from tests.warehouse.vee_rows import insert_all_actual_vee

MARTS = (
    "dim_meter",
    "fct_consumption_hourly",
    "fct_consumption_daily",
    "fct_data_quality_daily",
    "fct_grid_stability",
    "fct_grid_state_events",
    "fct_weather_impact",
    "fct_weather_conditions",
    "fct_weather_sensitivity",
)
UPSTREAM = {
    "validated_meter_readings",
    "validated_grid_status",
    "validated_weather_observations",
    "meter_registry",
    "anomaly_scores",
    "enriched_meter_readings",
    "vee_meter_readings",
    "grid_stability",
    "load_forecast",
    "retention_cleanup",  # ops.lifecycle_days: the grid and weather marts keep the days it deleted
}


def test_definitions_follow_the_home_of_the_moment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A process whose home changes (a test's temporary home) gets dbt assets that write under its home
    now: the first call's definitions wrote every later test's dbt folders under a home long gone."""
    monkeypatch.setenv("METRIFY_HOME", str(tmp_path / "a"))
    first = build_defs()
    assert build_defs() is first  # built once per home
    monkeypatch.setenv("METRIFY_HOME", str(tmp_path / "b"))
    assert build_defs() is not first


def warehouse_assets() -> dg.AssetsDefinition:
    (assets,) = build_defs().assets or ()
    assert isinstance(assets, dg.AssetsDefinition)
    return assets


def test_marts_load_downstream_of_the_ops_assets() -> None:
    assets = warehouse_assets()
    keys = set(assets.keys)
    assert {dg.AssetKey(["marts", name]) for name in MARTS} <= keys
    deps = {dep for key in keys for dep in assets.asset_deps[key]} - keys
    assert deps == {dg.AssetKey(name) for name in UPSTREAM}
    staged = assets.asset_deps[dg.AssetKey(["staging", "stg_ops__quarantine"])]
    assert staged == {dg.AssetKey("validated_meter_readings")}
    assert {assets.group_names_by_key[key] for key in keys} == {WAREHOUSE_GROUP}


def test_dbt_tests_are_asset_checks() -> None:
    checks = {(c.asset_key, c.name) for c in warehouse_assets().check_specs}
    daily = dg.AssetKey(["marts", "fct_consumption_daily"])
    assert (daily, "not_null_fct_consumption_daily_meter_id") in checks
    assert any(key == daily and name.startswith("equals_sum_of") for key, name in checks)


@pytest.mark.postgres
def test_materialise_on_postgres(pg: psycopg.Connection, pg_resource: PostgresResource) -> None:
    with pg.cursor() as cur:
        # The session's database may hold marts another test module built (a worker runs several
        # modules): the build's data tests check whole marts, so they start from none.
        cur.execute("DROP SCHEMA IF EXISTS marts CASCADE")
        cur.execute(
            "INSERT INTO ops.meters (meter_id, segment, region) VALUES ('MTR-9', 'industrial', 'east')"
        )
        cur.execute(
            "INSERT INTO ops.meter_readings (meter_id, reading_start, interval_minutes, energy_kwh, "
            "record_version, batch_id) VALUES ('MTR-9', '2026-01-05T10:15:00Z', 15, 2.5, 1, 'B'), "
            "('MTR-9', '2026-01-05T10:30:00Z', 15, 1.5, 1, 'B')"
        )
    readings = pd.DataFrame(
        {
            "meter_id": ["MTR-9", "MTR-9"],
            "reading_start": ["2026-01-05T10:15:00Z", "2026-01-05T10:30:00Z"],
            "interval_minutes": [15, 15],
            "energy_kwh": [2.5, 1.5],
        }
    )
    insert_all_actual_vee(pg, readings, {"MTR-9": "Europe/London"})
    pg.commit()
    defs = build_defs()
    result = dg.materialize(
        [warehouse_assets()],
        resources={**(defs.resources or {}), "postgres": pg_resource, "redis": RedisResource()},
        partition_key="2026-01-05",
    )
    assert result.success
    materialized = {e.asset_key: e for e in result.get_asset_materialization_events()}
    daily = materialized[dg.AssetKey(["marts", "fct_consumption_daily"])]
    # The rows the build wrote, as the database counted them (the meter's one day), for the UI's plot.
    assert daily.materialization.metadata["rows_written"] == dg.IntMetadataValue(1)
    evaluations = result.get_asset_check_evaluations()
    assert evaluations and all(e.passed for e in evaluations)
    with pg.cursor() as cur:
        cur.execute(
            "SELECT kwh_import, interval_count, missing_intervals, billing_ready "
            "FROM marts.fct_consumption_daily WHERE meter_id = 'MTR-9'"
        )
        assert cur.fetchall() == [(4.0, 2, 94, False)]


@pytest.mark.postgres
def test_backfill_of_two_days_builds_exactly_those_days(
    pg: psycopg.Connection, pg_resource: PostgresResource
) -> None:
    """One single-run backfill over two daily partitions: dbt gets min_date/max_date and the
    incremental facts hold those two days only, though readings span four."""
    with pg.cursor() as cur:
        cur.execute(
            "INSERT INTO ops.meters (meter_id, segment, region, timezone) VALUES ('MTR-P', 'residential', 'west', 'UTC')"
        )
        cur.executemany(
            "INSERT INTO ops.meter_readings (meter_id, reading_start, interval_minutes, energy_kwh, "
            "record_version, batch_id) VALUES ('MTR-P', %s, 30, %s, 1, 'B')",
            [(f"2026-02-0{day}T{hour:02d}:00:00Z", 0.5 * day) for day in (1, 2, 3, 4) for hour in (6, 18)],
        )
        cur.execute("DROP SCHEMA IF EXISTS marts CASCADE")
    starts = [f"2026-02-0{day}T{hour:02d}:00:00Z" for day in (1, 2, 3, 4) for hour in (6, 18)]
    readings = pd.DataFrame(
        {
            "meter_id": "MTR-P",
            "reading_start": starts,
            "interval_minutes": 30,
            "energy_kwh": [0.5 * int(start[9]) for start in starts],
        }
    )
    insert_all_actual_vee(pg, readings, {"MTR-P": "UTC"})
    pg.commit()
    result = dg.materialize(
        [warehouse_assets()],
        resources={**(build_defs().resources or {}), "postgres": pg_resource, "redis": RedisResource()},
        tags=partition_range_tags(date(2026, 2, 2), date(2026, 2, 3)),
    )
    assert result.success
    partitions = {e.partition for e in result.get_asset_materialization_events()}
    assert partitions == {"2026-02-02", "2026-02-03"}
    with pg.cursor() as cur:
        cur.execute("SELECT local_date, kwh_import FROM marts.fct_consumption_daily ORDER BY local_date")
        assert cur.fetchall() == [(date(2026, 2, 2), 2.0), (date(2026, 2, 3), 3.0)]
        cur.execute("SELECT DISTINCT local_date FROM marts.fct_consumption_hourly ORDER BY local_date")
        assert cur.fetchall() == [(date(2026, 2, 2),), (date(2026, 2, 3),)]
    # The build records the days it rebuilt (what the lifecycle waits for: storage/rebuilt.py).
    stamped = "SELECT asset, day, began_at FROM ops.rebuilt_days ORDER BY day"
    built = pg.execute(stamped).fetchall()
    pg.commit()
    assert [(asset, day) for asset, day, _ in built] == [
        ("metrify_dbt", date(2026, 2, 2)),
        ("metrify_dbt", date(2026, 2, 3)),
    ]
    # A failing build's error reads as text: dbt's colour codes reached `metrify run`'s summary and alerts.
    with pg.cursor() as cur:
        cur.execute("ALTER TABLE marts.fct_consumption_daily DROP COLUMN billing_ready")
    pg.commit()
    try:
        failed = dg.materialize(
            [warehouse_assets()],
            resources={**(build_defs().resources or {}), "postgres": pg_resource, "redis": RedisResource()},
            tags=partition_range_tags(date(2026, 2, 2), date(2026, 2, 3)),
            raise_on_error=False,
        )
    finally:  # no broken mart for the session's later builds
        with pg.cursor() as cur:
            cur.execute("DROP SCHEMA IF EXISTS marts CASCADE")
        pg.commit()
    assert not failed.success
    assert pg.execute(stamped).fetchall() == built  # a failed build rebuilt nothing
    errors = [str(e.step_failure_data.error) for e in failed.all_events if e.is_step_failure]
    assert errors and "out of sync" in " ".join(errors)
    assert not any("\x1b[" in e for e in errors)
    # It names the model with dbt's words, not dbt's command line with its --vars (the run's log has it).
    (message,) = {
        root_error(e.step_failure_data.error).message for e in failed.all_events if e.is_step_failure
    }
    assert "dbt build failed: model fct_consumption_daily (error): Compilation Error in model" in message
    assert "Source columns not in target" in message and "billing_ready" in message
    assert "--vars" not in message and "dbt CLI process" not in message and "> called by" not in message


@pytest.mark.postgres
def test_dbt_docs_land_in_the_lake_reports(pg_resource: PostgresResource, tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    uri = generate_docs(pg_resource.get_url(), lake)
    assert uri.endswith(DOCS_KEY)
    html = lake.get(DOCS_KEY).decode()
    assert "fct_peak_demand" in html and "peak_demand_kw" in html
