"""dbt source freshness as Dagster asset checks, for real: `dbt source freshness` on the embedded
PostgreSQL, with rows loaded hours ago and just now. One dbt run covers every outcome (a dbt start
costs seconds): fresh, warn, error, and no data yet (which passes: no data is not late data)."""

from __future__ import annotations

import json
from typing import Any

import dagster as dg
import psycopg
import pytest

from metrify_assets import definitions, schedules
from metrify_assets.env import resolve_settings
from metrify_assets.resources import PostgresResource
from metrify_assets.resources.cache_resource import RedisResource
from metrify_assets.warehouse.definitions import build_defs
from metrify_assets.warehouse.paths import DBT_PROJECT_DIR
from metrify_assets.warehouse.project import ensure_manifest
from metrify_assets.warehouse.source_freshness import (
    CHECK_NAME,
    LAST_LOADED_AT,
    NEVER_LOADED,
    NO_DATA_YET,
)


def on_staging(table: str) -> dg.AssetCheckKey:
    return dg.AssetCheckKey(dg.AssetKey(["staging", f"stg_ops__{table}"]), CHECK_NAME)


READINGS = on_staging("meter_readings")
LEDGER = on_staging("ingest_ledger")
QUARANTINE = on_staging("quarantine")
WEATHER = on_staging("weather_observations")
EVENTS = on_staging("grid_state_events")


def sources() -> list[dict[str, Any]]:
    manifest = json.loads(ensure_manifest().read_bytes())
    return list(manifest["sources"].values())


def test_every_source_has_freshness_and_a_load_time() -> None:
    for source in sources():
        criteria = source["freshness"] or {}
        assert criteria.get("warn_after", {}).get("count"), source["name"]
        assert criteria.get("error_after", {}).get("count"), source["name"]
        assert source["loaded_at_field"] or source["loaded_at_query"], source["name"]


def freshness_checks() -> dg.AssetChecksDefinition:
    (checks,) = build_defs().asset_checks or ()
    assert isinstance(checks, dg.AssetChecksDefinition)
    return checks


def test_one_check_per_source_run_by_the_hourly_and_nightly_jobs() -> None:
    checks = freshness_checks()
    assert len(set(checks.check_keys)) == len(sources())
    assert {READINGS, LEDGER, QUARANTINE, WEATHER, EVENTS} <= set(checks.check_keys)
    location = definitions.defs()  # the code location: the schedules' jobs over every asset
    for job in (schedules.refresh_job.name, schedules.daily_marts_job.name):
        selected = location.resolve_job_def(job).asset_layer.asset_graph.asset_check_keys
        assert set(checks.check_keys) <= selected, job


def evaluations(result: dg.ExecuteInProcessResult) -> dict[dg.AssetCheckKey, dg.AssetCheckEvaluation]:
    assert result.success
    return {e.asset_check_key: e for e in result.get_asset_check_evaluations()}


@pytest.mark.postgres
def test_stale_sources_fail_by_severity_and_fresh_ones_pass(
    pg: psycopg.Connection, pg_resource: PostgresResource, capsys: pytest.CaptureFixture[str]
) -> None:
    with pg.cursor() as cur:
        # Readings loaded 10 hours ago (past error_after, 6 h); the ledger's last batch 3 hours ago
        # (past warn_after, 2 h); weather just now.
        cur.execute(
            "INSERT INTO ops.meter_readings (meter_id, reading_start, interval_minutes, energy_kwh, "
            "record_version, batch_id, ingested_at) "
            "VALUES ('MTR-1', now() - interval '11 hours', 15, 1.0, 1, 'B1', now() - interval '10 hours')"
        )
        cur.execute(
            "INSERT INTO ops.ingest_ledger (batch_id, source, origin, origin_ref, raw_key, records_in, "
            "accepted, flagged, quarantined, processed_at) "
            "VALUES ('B1', 'meter_readings', 'landing', 'f.csv', 'raw/f.csv', 1, 1, 0, 0, now() - interval '3 hours')"
        )
        cur.execute(
            "INSERT INTO ops.weather_observations (station_id, observed_at, temperature_c, humidity_pct, "
            "pressure_hpa, wind_speed_ms, precipitation_mm, record_version, batch_id) "
            "VALUES ('WS-1', now(), 10.0, 80.0, 1010.0, 3.0, 0.0, 1, 'B2')"
        )
    pg.commit()

    checks = freshness_checks()
    defs = build_defs()
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [*(defs.assets or ()), checks],  # type: ignore[list-item]
        selection=dg.AssetSelection.checks(checks),
        resources={**(defs.resources or {}), "postgres": pg_resource, "redis": RedisResource()},
        instance=instance,
    )
    evaluated = evaluations(result)
    # dbt's console is in the run's debug log, not on stdout (where `metrify ... --json` prints JSON).
    assert "freshness of ops." not in capsys.readouterr().out
    logged = [e.user_message for e in instance.all_logs(result.run_id) if not e.is_dagster_event]
    assert any("ERROR STALE freshness of ops.meter_readings" in line for line in logged)
    assert not any("\x1b[" in line for line in logged)  # without dbt's colours
    assert set(evaluated) == set(checks.check_keys)

    readings = evaluated[READINGS]
    assert not readings.passed and readings.severity == dg.AssetCheckSeverity.ERROR
    assert readings.metadata["status"].value == "error"
    assert 9.9 < readings.metadata["age_hours"].value < 10.5
    assert readings.metadata["error_after"].value == "6 hour"
    assert readings.metadata["warn_after"].value == "2 hour"
    ledger = evaluated[LEDGER]
    assert not ledger.passed and ledger.severity == dg.AssetCheckSeverity.WARN
    # The quarantine is as fresh as the ledger's last batch (its loaded_at_query).
    quarantine = evaluated[QUARANTINE]
    assert not quarantine.passed and quarantine.severity == dg.AssetCheckSeverity.WARN
    assert quarantine.metadata["age_hours"].value == pytest.approx(
        ledger.metadata["age_hours"].value, abs=0.01
    )
    weather = evaluated[WEATHER]
    assert weather.passed and weather.metadata["status"].value == "pass"
    assert weather.metadata["age_hours"].value < 1
    # Nothing was ever written (dbt: an error): no rows have gone stale yet, so it passes.
    events = evaluated[EVENTS]
    assert events.passed and events.metadata["status"].value == NO_DATA_YET
    assert events.metadata["max_loaded_at"].value == NEVER_LOADED and "age_hours" not in events.metadata
    forecasts = evaluated[on_staging("load_forecasts")]
    assert forecasts.passed and forecasts.metadata["status"].value == NO_DATA_YET

    # The next check starts from this one's parse state: dbt parses nothing again (it parsed the
    # project in full, 6 of a 6 s command, on every check before), and answers the same.
    again = dg.materialize(
        [*(defs.assets or ()), checks],  # type: ignore[list-item]
        selection=dg.AssetSelection.checks(checks),
        resources={**(defs.resources or {}), "postgres": pg_resource, "redis": RedisResource()},
        instance=instance,
    )
    # Under the home (METRIFY_HOME/dbt/target), not the installed project's target/, where every home's
    # runs met and each home's pruning removed the others'.
    (log,) = resolve_settings().dbt_runs_dir.glob(f"{CHECK_NAME}-{again.run_id[:7]}-*/dbt.log")
    assert not list((DBT_PROJECT_DIR / "target").glob(f"*-{again.run_id[:7]}-*"))
    assert "Partial parsing enabled" in log.read_text()
    assert {k: (e.passed, e.severity) for k, e in evaluations(again).items()} == {
        k: (e.passed, e.severity) for k, e in evaluated.items()
    }


@pytest.mark.postgres
def test_no_data_yet_passes_and_a_table_emptied_since_the_check_saw_rows_is_stale(
    pg: psycopg.Connection, pg_resource: PostgresResource
) -> None:
    """`ops.weather_observations` on a meter-only deployment: its writer runs and writes nothing (no
    data is not late data); once the check has seen a row, the table emptied again is stale."""
    checks = freshness_checks()
    defs = build_defs()
    instance = dg.DagsterInstance.ephemeral()

    def check_weather() -> dg.AssetCheckEvaluation:
        result = dg.materialize(
            [*(defs.assets or ()), checks],  # type: ignore[list-item]
            selection=dg.AssetSelection.checks(WEATHER),
            resources={**(defs.resources or {}), "postgres": pg_resource, "redis": RedisResource()},
            instance=instance,
        )
        return evaluations(result)[WEATHER]

    instance.report_runless_asset_event(dg.AssetMaterialization(asset_key="validated_weather_observations"))
    empty = check_weather()  # the writer ran and found nothing to write
    assert empty.passed and empty.metadata["status"].value == NO_DATA_YET
    # An evaluation from before this rule stored dbt's year-1 stand-in as the table's load time: no
    # load time, so the table that never had a row is still "no data yet" after an upgrade.
    instance.report_runless_asset_event(
        dg.AssetCheckEvaluation(
            asset_key=WEATHER.asset_key,
            check_name=WEATHER.name,
            passed=False,
            metadata={"max_loaded_at": dg.MetadataValue.timestamp(-62135596800.0)},
        )
    )
    assert check_weather().metadata["status"].value == NO_DATA_YET
    assert empty.metadata["max_loaded_at"].value == NEVER_LOADED and "age_hours" not in empty.metadata
    with pg.cursor() as cur:
        cur.execute(
            "INSERT INTO ops.weather_observations (station_id, observed_at, temperature_c, humidity_pct, "
            "pressure_hpa, wind_speed_ms, precipitation_mm, record_version, batch_id, ingested_at) "
            "VALUES ('WS-EMPTIED', now(), 10.0, 80.0, 1010.0, 3.0, 0.0, 1, 'B-EMPTIED', "
            "now() - interval '1 hour') RETURNING ingested_at"
        )
        (loaded,) = cur.fetchone() or ()
    pg.commit()
    assert check_weather().passed
    with pg.cursor() as cur:
        cur.execute("DELETE FROM ops.weather_observations WHERE station_id = 'WS-EMPTIED'")
    pg.commit()
    for _ in range(2):  # the last load time is carried from one evaluation to the next
        emptied = check_weather()
        assert not emptied.passed and emptied.severity == dg.AssetCheckSeverity.ERROR
        assert emptied.metadata["status"].value == "emptied"
        assert emptied.metadata[LAST_LOADED_AT].value == pytest.approx(loaded.timestamp())
        assert 0.9 < emptied.metadata["age_hours"].value < 1.5
