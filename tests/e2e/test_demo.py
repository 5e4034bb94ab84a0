"""`metrify demo` end to end on embedded services: reconciliation, quarantine, marts, idempotency."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from metrify_assets.cli.main import app
from metrify_assets.env import resolve_settings
from metrify_assets.orchestration.instance import LOCATION_NAME
from metrify_assets.partitions import TRIGGER_TAG
from metrify_assets.quality.quarantine import reason_code
from metrify_assets.resources.build import postgres_resource
from metrify_assets.storage.embedded_server import stop_embedded

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]
DEMO_ARGS = ["demo", "--meters", "25", "--days", "2", "--seed", "7", "--fault-rate", "0.02", "--json"]


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh METRIFY_HOME; the embedded server its demo runs start is stopped after the module."""
    home = tmp_path_factory.mktemp("metrify-home")
    yield home
    stop_embedded(resolve_settings({"METRIFY_HOME": str(home)}).pg_data_dir)


@pytest.fixture(scope="module")
def runs(demo_home: Path) -> list[dict[str, object]]:
    """Run the demo twice in one fresh home, returning both JSON summaries."""
    env = {"METRIFY_HOME": str(demo_home), "DAGSTER_HOME": str(demo_home / "dagster")}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        summaries = []
        for _ in range(2):
            result = CliRunner().invoke(app, DEMO_ARGS, catch_exceptions=False)
            assert result.exit_code == 0, result.output
            # stdout is the JSON object and nothing else: dbt's console went to the run's log
            summaries.append(json.loads(result.stdout))
    return summaries


@pytest.fixture
def conn(demo_home: Path) -> psycopg.Connection:
    settings = resolve_settings({"METRIFY_HOME": str(demo_home)})
    with postgres_resource(settings).connect() as connection:
        yield connection


def test_input_equals_accepted_plus_quarantined(runs: list[dict[str, object]]) -> None:
    first = runs[0]
    assert first["input_records"] > 0
    assert first["input_records"] == first["accepted"] + first["quarantined"]
    assert 0 < first["quarantined"] < first["input_records"]
    assert first["flagged"] <= first["accepted"]
    for key in ("anomalies", "quality_score", "marts", "report_path"):
        assert key in first


def test_a_second_run_gives_the_same_counts(runs: list[dict[str, object]]) -> None:
    ignore = {"seconds"}
    assert {k: v for k, v in runs[0].items() if k not in ignore} == {
        k: v for k, v in runs[1].items() if k not in ignore
    }


def test_a_metrics_scrape_counts_the_demos_records(runs: list[dict[str, object]], demo_home: Path) -> None:
    """`metrify metrics show` after the demo: the record counters summed over sources are its counts."""
    env = {"METRIFY_HOME": str(demo_home), "DAGSTER_HOME": str(demo_home / "dagster")}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        result = CliRunner().invoke(app, ["metrics", "show"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    totals = dict.fromkeys(("received", "accepted", "quarantined"), 0.0)
    for family in text_string_to_metric_families(result.stdout):
        for sample in family.samples:
            name = sample.name.removeprefix("metrify_records_").removesuffix("_total")
            if sample.name.startswith("metrify_records_") and name in totals:
                totals[name] += sample.value
    demo = runs[-1]
    assert totals == {
        "received": demo["input_records"],
        "accepted": demo["accepted"],
        "quarantined": demo["quarantined"],
    }


def test_every_injected_malformed_record_is_quarantined_with_a_reason(
    runs: list[dict[str, object]], demo_home: Path, conn: psycopg.Connection
) -> None:
    labels = [
        json.loads(line) for line in (demo_home / "simulation" / "labels.jsonl").read_text().splitlines()
    ]
    malformed = [label for label in labels if label["kind"] == "malformed"]
    assert malformed, "the simulator injected no malformed records at this fault rate"
    quarantined = dict(conn.execute("SELECT payload, reasons FROM ops.quarantine").fetchall())
    for label in malformed:
        assert label["payload"] in quarantined, label
        assert quarantined[label["payload"]].startswith("malformed:")
    # The summary counts reason codes, as the report, the marts and `metrify dlq list` do (it counted
    # families: `malformed` 126), and every quarantined record's reasons are in it.
    reasons = runs[-1]["quarantine_reasons"]
    assert isinstance(reasons, dict)
    rows = conn.execute("SELECT reasons FROM ops.quarantine").fetchall()
    codes = [reason_code(r) for (text,) in rows for r in text.split(",")]
    assert reasons == dict(Counter(codes)) and "malformed" not in reasons
    assert any(code.startswith("malformed:") for code in reasons)


def test_every_reading_is_in_the_vee_series_and_the_marts_hold_its_billable_intervals(
    runs: list[dict[str, object]], conn: psycopg.Connection
) -> None:
    unplaced = conn.execute(
        "SELECT count(*) FROM ops.meter_readings r LEFT JOIN ops.vee_readings v USING (meter_id, reading_start) "
        "WHERE v.meter_id IS NULL"
    ).fetchone()
    assert unplaced == (0,)
    billable = conn.execute(
        "SELECT count(*), round(sum(energy_kwh)::numeric, 6) FROM ops.vee_readings WHERE energy_kwh IS NOT NULL"
    ).fetchone()
    daily = conn.execute(
        "SELECT sum(interval_count), round(sum(net_kwh)::numeric, 6) FROM marts.fct_consumption_daily"
    ).fetchone()
    hourly = conn.execute(
        "SELECT round(sum(net_kwh)::numeric, 6) FROM marts.fct_consumption_hourly"
    ).fetchone()
    assert daily == billable
    assert hourly is not None and billable is not None and hourly[0] == billable[1]
    vee = runs[0]["vee_intervals"]
    assert isinstance(vee, dict) and vee["estimated"] > 0 and vee["actual"] > 0
    assert runs[0]["vee_audit_rows"] == vee["estimated"] + vee.get("edited", 0) + vee.get("failed", 0)
    marts = runs[0]["marts"]
    assert isinstance(marts, dict)
    for name in ("fct_consumption_hourly", "fct_consumption_daily", "dim_meter", "fct_data_quality_daily"):
        assert marts[name] > 0


def test_the_report_and_archive_are_in_the_lake(runs: list[dict[str, object]], demo_home: Path) -> None:
    assert Path(str(runs[0]["report_path"])).is_file()
    archives = sorted((demo_home / "lake" / "curated" / "meter_readings").glob("dt=*/*.parquet"))
    assert len(archives) >= 2


def test_the_summary_shows_grid_states_and_alerts(
    runs: list[dict[str, object]], conn: psycopg.Connection
) -> None:
    hours = runs[0]["grid_node_hours"]
    assert isinstance(hours, dict) and set(hours) <= {"normal", "alert", "emergency"}
    node_hours = conn.execute(
        "SELECT count(DISTINCT (grid_node_id, date_trunc('hour', measured_at))) FROM ops.grid_status"
    ).fetchone()
    assert node_hours is not None and sum(hours.values()) == node_hours[0] > 0
    alerts = runs[0]["alerts"]
    assert isinstance(alerts, dict)
    stored = conn.execute("SELECT count(*) FROM ops.alerts").fetchone()
    assert stored is not None and sum(alerts.values()) == stored[0]
    # The demo's network is GB's: its nodes are judged by GB's standards, and its frequency event
    # (375 mHz low for 13 minutes) is an alert of every node under them.
    assert runs[0]["grid_area"] == "great_britain"
    assert conn.execute("SELECT DISTINCT area FROM ops.grid_stability").fetchall() == [("great_britain",)]
    alerted = conn.execute(
        "SELECT count(DISTINCT grid_node_id), min(abs(peak_deviation_hz)) FROM ops.grid_state_events "
        "WHERE state = 'alert' AND rule = 'beyond_half_max_steady_state'"
    ).fetchone()
    nodes = conn.execute("SELECT count(DISTINCT grid_node_id) FROM ops.grid_status").fetchone()
    assert alerted is not None and nodes is not None and alerted[0] == nodes[0] > 0
    assert alerted[1] > 0.25  # beyond half of GB's 500 mHz maximum steady-state deviation


def test_the_demo_forecasts_the_day_after_its_data(
    runs: list[dict[str, object]], conn: psycopg.Connection
) -> None:
    forecast = runs[0]["forecast"]
    assert isinstance(forecast, dict) and forecast["day"] == "2026-03-30"  # data: 2026-03-28 and 29
    series = conn.execute(
        "SELECT count(DISTINCT (region, segment)) FROM ops.vee_readings JOIN ops.meters USING (meter_id)"
    ).fetchone()
    assert series is not None and forecast["series"] == series[0] > 0
    totals = conn.execute(
        "SELECT sum(p10_kwh), sum(p50_kwh), sum(p90_kwh) FROM ops.load_forecasts "
        "WHERE selected AND local_date = '2026-03-30'"
    ).fetchone()
    assert totals is not None
    # numbers in the JSON, not the table's formatted text
    assert [forecast["p10_kwh"], forecast["p50_kwh"], forecast["p90_kwh"]] == pytest.approx(totals, abs=1e-3)
    # every series' chosen method has a value for each of the day's 96 quarter-hours
    rows = conn.execute(
        "SELECT region, segment, count(*), count(p50_kwh) FROM ops.load_forecasts "
        "WHERE selected AND local_date = '2026-03-30' GROUP BY 1, 2"
    ).fetchall()
    assert len(rows) == series[0] and all(n == with_value == 96 for _, _, n, with_value in rows)
    # Two days cannot back a backtest: every series' persistence is a default, and the summary says so.
    assert forecast["methods"] == ["persistence"]
    assert forecast["by_default"] == series[0] and forecast["history_days"] == 2
    assert runs[1]["forecast"] == forecast  # a second run replaces the forecast with the same one


def test_the_forecasts_metadata_says_persistence_is_a_default_not_a_win(
    runs: list[dict[str, object]], demo_home: Path
) -> None:
    """The winners table showed persistence winning every series with an interval margin of 0.0 and
    MAEs None/nan: a choice two days of history cannot back."""
    with dg.DagsterInstance.from_config(str(demo_home / "dagster")) as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey("load_forecast"))
    assert event is not None and event.asset_materialization is not None
    metadata = event.asset_materialization.metadata
    assert metadata["wins_persistence"].value == 0
    assert metadata["chosen_by_default"].value == metadata["series_days"].value > 0
    winners = str(metadata["winners"].value)
    lines = [line for line in winners.splitlines() if "| persistence |" in line]
    assert lines and all("persistence by default" in line for line in lines)
    assert "no backtest to choose by yet: 2 days of history, 8 needed; persistence by default" in winners
    assert "no backtest to choose by yet: 1 day of history, 8 needed" in winners
    assert not any(word in winners for word in ("nan", "None", "margin"))


def test_the_first_forecast_day_is_persistences_point_forecast(
    runs: list[dict[str, object]], conn: psycopg.Connection
) -> None:
    """2026-03-29, forecast from the demo's first day alone: only persistence has the history (no rows
    for the weekly baselines or the model, rather than null ones), it has no error of its own to size
    an interval (P10/P90 null, not equal to the P50), and the marts score its P50 but count no
    interval miss. Its rows name persistence, not a model."""
    methods = conn.execute(
        "SELECT method, count(*), count(p50_kwh), count(p10_kwh), count(p90_kwh), "
        "bool_and(model_version LIKE 'persistence-v1@2026-03-29-%%') "
        "FROM ops.load_forecasts WHERE local_date = '2026-03-29' GROUP BY 1"
    ).fetchall()
    assert [m[0] for m in methods] == ["persistence"]
    ((_, rows, p50, p10, p90, named),) = methods
    assert rows == p50 > 0 and p10 == p90 == 0 and named
    scored = conn.execute(
        "SELECT count(*), count(actual_kwh), count(within_p10_p90) FROM marts.fct_load_forecast "
        "WHERE local_date = '2026-03-29'"
    ).fetchone()
    assert scored is not None and scored[0] == rows and scored[1] > 0 and scored[2] == 0
    accuracy = conn.execute(
        "SELECT sum(intervals_scored), count(mae_kwh), count(coverage) FROM marts.fct_forecast_accuracy "
        "WHERE local_date = '2026-03-29'"
    ).fetchone()
    assert accuracy is not None and accuracy[0] > 0 and accuracy[1] > 0 and accuracy[2] == 0


def test_forecast_show_lists_the_chosen_forecast_of_every_series(
    runs: list[dict[str, object]], demo_home: Path
) -> None:
    env = {"METRIFY_HOME": str(demo_home), "DAGSTER_HOME": str(demo_home / "dagster")}
    result = CliRunner().invoke(app, ["forecast", "show", "--json"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout.strip().splitlines()[-1])
    forecast = runs[0]["forecast"]
    assert isinstance(forecast, dict) and len(rows) == forecast["series"]
    assert sorted({r["method"] for r in rows}) == forecast["methods"]
    assert all(r["intervals"] == 96 and r["p10_kwh"] <= r["p50_kwh"] <= r["p90_kwh"] for r in rows)
    assert all(r["actual_intervals"] == 0 for r in rows)  # the day after the data has not happened
    # Two days of history: persistence by default, without a one-method MAE posing as the backtest's
    # (the words and counts the forecast's metadata and the demo's summary have).
    why = "no backtest to choose by yet: 2 days of history, 8 needed; persistence by default"
    assert all(r["by_default"] and r["history_days"] == forecast["history_days"] for r in rows)
    assert all(r["why"] == why and r["backtest_mae_kwh"] is None for r in rows)


def test_forecast_show_for_a_day_without_forecasts_says_so(
    runs: list[dict[str, object]], demo_home: Path
) -> None:
    env = {"METRIFY_HOME": str(demo_home), "DAGSTER_HOME": str(demo_home / "dagster")}
    result = CliRunner().invoke(app, ["forecast", "show", "--day", "1999-01-01"], env=env)
    assert result.exit_code == 1 and result.stdout == ""
    assert "no forecast for 1999-01-01; the newest is for 2026-03-30" in result.stderr
    as_json = CliRunner().invoke(app, ["forecast", "show", "--day", "1999-01-01", "--json"], env=env)
    assert as_json.exit_code == 1 and json.loads(as_json.stdout) == []


def test_the_demos_runs_are_in_the_ui_as_the_demos(runs: list[dict[str, object]], demo_home: Path) -> None:
    """Every run the demo executed is tagged with its trigger and belongs to the code location the UI
    serves (so the UI can re-execute it)."""
    with dg.DagsterInstance.from_config(str(demo_home / "dagster")) as instance:
        history = instance.get_runs()
    assert {run.job_name for run in history} >= {"ingest_meter_readings_job", "refresh_job", "daily_job"}
    assert {run.tags.get(TRIGGER_TAG) for run in history} == {"demo"}
    assert {run.remote_job_origin.location_name for run in history if run.remote_job_origin} == {
        LOCATION_NAME
    }
    assert all(run.remote_job_origin for run in history)
