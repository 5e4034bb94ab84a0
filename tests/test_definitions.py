"""The code location loads, with every asset, job, sensor and schedule, and rich asset metadata."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import dagster as dg
import pytest

from metrify_assets.definitions import defs as load_defs

EXPECTED_ASSETS = {
    "raw_meter_readings", "raw_grid_status", "raw_weather_observations",
    "validated_meter_readings", "validated_grid_status", "validated_weather_observations",
    "meter_registry", "anomaly_scores", "enriched_meter_readings",
    "marts/fct_consumption_hourly", "marts/fct_consumption_daily", "marts/dim_meter",
    "marts/fct_data_quality_daily", "warm_tier", "cold_tier", "archive_tier", "retention_cleanup", "data_quality_report",
}  # fmt: skip


@pytest.fixture(scope="module")
def defs(tmp_path_factory: pytest.TempPathFactory) -> dg.Definitions:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("METRIFY_HOME", str(tmp_path_factory.mktemp("home")))
        return load_defs()


def test_every_layer_of_the_lineage_is_an_asset(defs: dg.Definitions) -> None:
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert keys >= EXPECTED_ASSETS


def test_dbt_sources_connect_to_the_upstream_assets(defs: dg.Definitions) -> None:
    graph = defs.resolve_asset_graph()
    stg = graph.get(dg.AssetKey(["staging", "stg_ops__meter_readings"]))
    assert dg.AssetKey("validated_meter_readings") in stg.parent_keys


def test_assets_carry_group_owners_and_kinds(defs: dg.Definitions) -> None:
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if node.is_external:
            continue
        assert node.group_name and node.group_name != "default", key
        assert node.owners, key
        assert node.kinds, key


def test_guarding_checks_are_blocking(defs: dg.Definitions) -> None:
    graph = defs.resolve_asset_graph()
    specs = {key.name: graph.get_check_spec(key) for key in graph.asset_check_keys}
    for source in ("meter_readings", "grid_status", "weather_observations"):
        assert specs[f"gx_validated_{source}"].blocking
    assert specs["gx_anomaly_scores"].blocking


def test_every_asset_check_says_what_it_checks(defs: dg.Definitions) -> None:
    """A check without a description shows "No description provided" on its page in the UI."""
    graph = defs.resolve_asset_graph()
    undescribed = [str(key) for key in graph.asset_check_keys if not graph.get_check_spec(key).description]
    assert undescribed == []


def test_dbt_test_checks_are_described_from_the_test(defs: dg.Definitions) -> None:
    """Generic tests get a description made from their kind, model and column, keeping dbt's severity."""
    graph = defs.resolve_asset_graph()
    hourly = dg.AssetKey(["marts", "fct_consumption_hourly"])
    spec = graph.get_check_spec(
        dg.AssetCheckKey(hourly, "relationships_fct_consumption_hourly_meter_id__meter_id__ref_dim_meter_")
    )
    assert spec.description is not None
    assert spec.description.startswith("relationships on fct_consumption_hourly.meter_id: every meter_id is")
    assert "Severity warn" in spec.description
    assert not spec.blocking
    singular = graph.get_check_spec(dg.AssetCheckKey(hourly, "assert_rollups_keep_all_energy"))
    assert singular.description is not None and singular.description.startswith("No energy is lost")
    assert singular.blocking


def test_jobs_sensors_and_schedules_load(defs: dg.Definitions) -> None:
    for source in ("meter_readings", "grid_status", "weather_observations"):
        defs.resolve_job_def(f"ingest_{source}_job")
        assert defs.resolve_sensor_def(f"landing_{source}_sensor")
    for name in ("refresh_job_schedule", "daily_job_schedule"):
        assert defs.resolve_schedule_def(name).cron_schedule


@pytest.mark.parametrize("location", ["metrify_assets.definitions", "benchmarks.freshness_location"])
def test_every_job_runs_its_steps_in_the_run_process(location: str, tmp_path: Path) -> None:
    """The UI's materialisations and the schedules' runs included, and in the location the freshness
    benchmark's daemon loads: a step process would import the whole code location again, per step."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("METRIFY_HOME", str(tmp_path))
        jobs = list(importlib.import_module(location).defs().resolve_all_job_defs())
    names = {job.name for job in jobs}
    assert {"refresh_job", "daily_job", "weekly_job", "ingest_meter_readings_job"} <= names
    assert any(name.startswith("__ASSET_JOB") for name in names)
    for job in jobs:
        assert job.executor_def is dg.in_process_executor, job.name


# `<word>` outside a code span: the UI's markdown renderer takes it for an HTML tag and drops it, so
# `dt=<day>/` shows as `dt=/`. A code span (backticks) keeps it literal.
CODE_SPAN = re.compile(r"(`+).+?\1", re.DOTALL)
BARE_PLACEHOLDER = re.compile(r"</?[A-Za-z][\w -]*>")


def bare_placeholders(markdown: str) -> list[str]:
    return BARE_PLACEHOLDER.findall(CODE_SPAN.sub("", markdown))


def test_bare_placeholder_finds_what_the_ui_would_drop() -> None:
    assert bare_placeholders("under models/load_forecast/<day>/.") == ["<day>"]
    assert bare_placeholders("dt=<first>_<last>/") == ["<first>", "<last>"]
    assert bare_placeholders("under `models/load_forecast/<day>/` and ``a <b> c``, x < y > z") == []


def test_no_description_holds_a_placeholder_the_ui_would_drop(defs: dg.Definitions) -> None:
    """Every asset's and asset check's description: a `<placeholder>` is in a code span."""
    graph = defs.resolve_asset_graph()
    found = {
        str(key): bare_placeholders(graph.get(key).description or "") for key in graph.get_all_asset_keys()
    }
    found |= {
        str(key): bare_placeholders(graph.get_check_spec(key).description or "")
        for key in graph.asset_check_keys
    }
    assert {key: tags for key, tags in found.items() if tags} == {}
