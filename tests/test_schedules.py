"""Schedules, their target jobs and the marts' freshness policies load in the code location."""

from __future__ import annotations

from datetime import UTC, date, datetime

import dagster as dg
import psycopg
import pytest

from metrify_assets.definitions import defs as load_defs
from metrify_assets.schedules import (
    daily_marts_schedule,
    daily_schedule,
    hourly_refresh_schedule,
    weekly_request,
)
from metrify_assets.warehouse.freshness import DAILY_FRESHNESS, HOURLY_FRESHNESS

RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


@pytest.fixture(scope="module")
def defs(tmp_path_factory: pytest.TempPathFactory) -> dg.Definitions:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("METRIFY_HOME", str(tmp_path_factory.mktemp("home")))
        return load_defs()


def job_assets(defs: dg.Definitions, job: str) -> set[str]:
    return {k.to_user_string() for k in defs.resolve_job_def(job).asset_layer.selected_asset_keys}


def test_schedules_target_their_jobs(defs: dg.Definitions) -> None:
    schedules = {s.name: (s.job_name, s.cron_schedule) for s in defs.schedules or []}
    assert schedules == {
        "refresh_job_schedule": ("refresh_job", "7 * * * *"),
        "daily_marts_schedule": ("daily_marts_job", "15 2 * * *"),
        "daily_job_schedule": ("daily_job", "30 2 * * *"),
        "weekly_job_schedule": ("weekly_job", "0 4 * * 0"),
    }
    refresh = job_assets(defs, "refresh_job")
    assert {"enriched_meter_readings", "marts/fct_consumption_hourly", "marts/fct_peak_demand"} <= refresh
    assert "marts/fct_consumption_daily" in job_assets(defs, "daily_marts_job")
    assert "grid_stability" in refresh & job_assets(defs, "daily_marts_job")
    daily = job_assets(defs, "daily_job")
    assert {"warm_tier", "data_quality_report", "load_forecast"} <= daily
    assert {"marts/fct_load_forecast", "marts/fct_forecast_accuracy"} <= daily
    assert not any(a.startswith("marts/fct_consumption") for a in daily)  # only what the forecast feeds
    assert job_assets(defs, "weekly_job") == {
        "meter_registry", "anomaly_model", "cold_tier", "archive_tier", "retention_cleanup"
    }  # fmt: skip


def test_downstream_assets_share_the_dbt_day_partitions(defs: dg.Definitions) -> None:
    graph = defs.resolve_asset_graph()
    dbt_days = graph.get(dg.AssetKey(["marts", "fct_consumption_daily"])).partitions_def
    for name in (
        "anomaly_scores",
        "enriched_meter_readings",
        "warm_tier",
        "cold_tier",
        "archive_tier",
        "data_quality_report",
        "grid_stability",
    ):
        assert graph.get(dg.AssetKey(name)).partitions_def == dbt_days, name
    assert graph.get(dg.AssetKey("anomaly_model")).partitions_def is None  # trained on its own schedule


def test_daily_schedule_requests_yesterday() -> None:
    context = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 3, 29, 2, 30, tzinfo=UTC))
    request = daily_schedule(context)
    assert isinstance(request, dg.RunRequest)
    assert request.partition_key == "2026-03-28"


def test_hourly_schedule_requests_yesterday_and_today() -> None:
    context = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 3, 29, 10, 7, tzinfo=UTC))
    request = hourly_refresh_schedule(context)
    assert isinstance(request, dg.RunRequest)
    assert (request.tags[RANGE_START], request.tags[RANGE_END]) == ("2026-03-28", "2026-03-29")


def test_daily_marts_schedule_requests_the_lookback_days() -> None:
    context = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 3, 29, 2, 15, tzinfo=UTC))
    request = daily_marts_schedule(context)
    assert isinstance(request, dg.RunRequest)
    assert (request.tags[RANGE_START], request.tags[RANGE_END]) == ("2026-03-26", "2026-03-28")


def test_marts_carry_freshness_policies(defs: dg.Definitions) -> None:
    graph = defs.resolve_asset_graph()
    marts = [k for k in graph.get_all_asset_keys() if k.path[0] == "marts"]
    assert len(marts) >= 10
    policies = {k.path[-1]: graph.get(k).freshness_policy for k in marts}
    assert policies["fct_consumption_hourly"] == HOURLY_FRESHNESS
    assert policies["fct_consumption_daily"] == DAILY_FRESHNESS
    assert all(policy is not None for policy in policies.values())
    staging = graph.get(dg.AssetKey(["staging", "stg_ops__meters"]))
    assert staging.freshness_policy is None


def test_weekly_schedule_covers_the_days_with_a_copy_still_to_move(pg: psycopg.Connection) -> None:
    """Nothing in the lake: training and retention only. Then from the oldest day not yet archived."""
    today = date(2026, 12, 6)
    request = weekly_request(pg, today, "weekly-test")
    assert request.asset_selection == [
        dg.AssetKey(a) for a in ("meter_registry", "anomaly_model", "retention_cleanup")
    ]
    for day, tier in (
        (date(2026, 1, 1), "archive"),
        (date(2026, 2, 1), "cold"),
        (date(2026, 11, 30), "warm"),
    ):
        pg.execute(
            "INSERT INTO ops.lifecycle_days (dataset, day, tier, storage_class, object_key, manifest_key, row_count, "
            "bytes, checksum, sha256, verified_at, moved_at) VALUES ('meter_readings', %s, %s, 'STANDARD', 'k', 'm', "
            "1, 1, 'c', 's', now(), now())",
            (day, tier),
        )
    pg.commit()
    request = weekly_request(pg, today, "weekly-test")
    assert request.asset_selection is None
    assert (request.tags[RANGE_START], request.tags[RANGE_END]) == ("2026-02-01", "2026-11-30")
