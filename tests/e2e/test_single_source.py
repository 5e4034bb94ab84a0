"""Each source stands alone: meters without a registry, grid only, weather only, through `metrify run`.

A grid operator lands only grid data, a weather service only observations, a head-end only readings
without a registry file: each `metrify run` succeeds, and builds the marts its data can feed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from metrify_assets.cli.main import app
from metrify_assets.env import resolve_settings
from metrify_assets.resources.build import postgres_resource
from metrify_assets.storage.embedded_server import stop_embedded

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]
UCI = Path(__file__).parents[1] / "fixtures" / "uci_household_power_2days.txt"
SIMULATE = ["simulate", "--meters", "12", "--days", "1", "--seed", "5", "--no-registry"]


@pytest.fixture(autouse=True)
def stop_home_server(tmp_path: Path) -> Iterator[None]:
    """Each test's home is its tmp_path: stop the embedded server its `metrify run` starts there."""
    yield
    stop_embedded(resolve_settings({"METRIFY_HOME": str(tmp_path)}).pg_data_dir)


def run_in_fresh_home(home: Path, sources: str) -> dict[str, object]:
    """`metrify simulate --sources ... --no-registry`, then `metrify run --json`; its summary."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("METRIFY_HOME", str(home))
        mp.setenv("DAGSTER_HOME", str(home / "dagster"))
        runner = CliRunner()
        simulated = runner.invoke(app, [*SIMULATE, "--sources", sources], catch_exceptions=False)
        assert simulated.exit_code == 0, simulated.output
        result = runner.invoke(app, ["run", "--json"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def query(home: Path, sql: str) -> list[tuple[object, ...]]:
    with postgres_resource(resolve_settings({"METRIFY_HOME": str(home)})).connect() as conn:
        return conn.execute(sql).fetchall()


def test_metrify_run_after_metrify_ingest_of_real_readings_without_a_registry(tmp_path: Path) -> None:
    """A head-end export (the UCI household sample) through `metrify ingest`, then `metrify run`."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("METRIFY_HOME", str(tmp_path))
        mp.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
        runner = CliRunner()
        ingest = ["ingest", "meter_readings", str(UCI), "--preset", "uci-household"]
        landed = runner.invoke(app, ingest, catch_exceptions=False)
        assert landed.exit_code == 0, landed.output
        summaries = []
        for _ in range(2):
            result = runner.invoke(app, ["run", "--json"], catch_exceptions=False)
            assert result.exit_code == 0, result.output
            summaries.append(json.loads(result.stdout.strip().splitlines()[-1]))
    first, again = summaries
    assert len(first["batch_ids"]) == 1 and first["trained_model"] is True
    # Paris local time in the file; an unregistered meter's day is the UTC day: 23:00 UTC opens it.
    assert first["day_ranges"] == [["2007-01-31", "2007-02-02"]]
    assert again["batch_ids"] == [] and again["jobs"] == []  # nothing new: nothing to do
    assert query(tmp_path, "SELECT count(*) FROM ops.meters") == [(0,)]
    readings = query(tmp_path, "SELECT count(*) FROM ops.meter_readings")[0][0]
    assert readings == 2 * 96
    enriched = query(
        tmp_path,
        "SELECT segment, region, quality_flags, count(*) FROM ops.enriched_meter_readings GROUP BY 1, 2, 3",
    )
    assert enriched == [("unknown", "unknown", "unknown_meter", readings)]
    assert query(tmp_path, "SELECT count(*) FROM ops.anomaly_scores") == [(readings,)]
    # Every reading is in the VEE series; the marts count its billable intervals (estimates included).
    assert query(tmp_path, "SELECT count(*) FROM ops.vee_readings WHERE original_kwh IS NOT NULL") == [
        (readings,)
    ]
    billable = query(tmp_path, "SELECT count(*) FROM ops.vee_readings WHERE energy_kwh IS NOT NULL")
    assert query(tmp_path, "SELECT sum(interval_count) FROM marts.fct_consumption_daily") == billable
    regions = query(tmp_path, "SELECT DISTINCT region, segment FROM marts.fct_consumption_daily_by_region")
    assert regions == [("unknown", "unknown")]
    assert query(tmp_path, "SELECT count(*) FROM marts.fct_grid_stability") == [(0,)]
    archives = sorted(
        p.parent.name for p in (tmp_path / "lake" / "curated" / "meter_readings").glob("*/*.parquet")
    )
    assert archives == ["dt=2007-01-31", "dt=2007-02-01", "dt=2007-02-02"]


def test_grid_only_builds_grid_stability(tmp_path: Path) -> None:
    first = run_in_fresh_home(tmp_path, "grid_status")
    assert first["trained_model"] is False  # no meter data: no model to train
    samples = query(tmp_path, "SELECT count(*) FROM ops.grid_status")[0][0]
    assert samples > 0
    assert query(tmp_path, "SELECT sum(sample_count) FROM marts.fct_grid_stability") == [(samples,)]
    # grid_stability ran in refresh_job: every node-hour has its state and risk, from frequency,
    # voltage and load (the simulated nodes send all three).
    assert query(
        tmp_path,
        "SELECT count(*) FROM marts.fct_grid_stability WHERE system_state IS NULL OR risk_score IS NULL "
        "OR risk_components <> 'frequency,voltage,load'",
    ) == [(0,)]
    for empty in (
        "ops.meter_readings",
        "ops.enriched_meter_readings",
        "ops.anomaly_scores",
        "marts.fct_consumption_daily",
    ):
        assert query(tmp_path, f"SELECT count(*) FROM {empty}") == [(0,)], empty
    reports = list((tmp_path / "lake" / "reports" / "quality").glob("dt=*/index.html"))
    assert reports, "the quality report of the grid batches' days is in the lake"


def test_weather_only_builds_the_weather_conditions(tmp_path: Path) -> None:
    run_in_fresh_home(tmp_path, "weather_observations")
    observations = query(tmp_path, "SELECT count(*) FROM ops.weather_observations")[0][0]
    assert observations > 0
    # Every observation is classified in its station-hour; no region, so no sensitivity.
    hours = query(tmp_path, "SELECT sum(observation_count) FROM marts.fct_weather_conditions")
    assert hours == [(observations,)]
    assert query(tmp_path, "SELECT count(*) FROM marts.fct_weather_sensitivity") == [(0,)]
    assert query(tmp_path, "SELECT count(*) FROM marts.fct_consumption_daily") == [(0,)]
