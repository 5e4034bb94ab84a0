"""Schedules, their target jobs and the marts' freshness policies load in the code location."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime

import dagster as dg
import psycopg
import pytest

from metrify_assets.alerts.store import resolve_condition
from metrify_assets.definitions import defs as load_defs
from metrify_assets.partitions import partition_range_tags
from metrify_assets.resources import PostgresResource
from metrify_assets.run_alerts import RunAlert, record
from metrify_assets.schedules import (
    daily_after_refresh_sensor,
    daily_marts_schedule,
    daily_schedule,
    follow_request,
    hourly_refresh_schedule,
    weekly_request,
)
from metrify_assets.warehouse.freshness import DAILY_FRESHNESS, HOURLY_FRESHNESS
from tests.orchestration.jobs import reexecuted_success_context, success_context

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
        "daily_job_schedule": ("daily_job", "30 2-23 * * *"),
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


def daily_tick(
    instance: dg.DagsterInstance, pg_resource: PostgresResource, hour: int
) -> dg.RunRequest | dg.SkipReason:
    with dg.build_schedule_context(
        instance=instance,
        scheduled_execution_time=datetime(2026, 3, 29, hour, 30, tzinfo=UTC),
        resources={"postgres": pg_resource},
    ) as context:
        result = daily_schedule(context)
    assert isinstance(result, dg.RunRequest | dg.SkipReason)
    return result


def refresh_failed(pg: psycopg.Connection, run_id: str, first: str, last: str) -> str:
    """An open run_failure alert of refresh_job for `first`..`last`, as the failure sensor records it."""
    alert = RunAlert(run_id, "refresh_job", None, "dbt", "DbtError", "boom", (first, last))
    record(pg, alert)
    pg.commit()
    return alert.dedup_key


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    """A Dagster instance on disk: a schedule's context needs one it can refer to."""
    with dg.instance_for_test(set_dagster_home=False) as instance:
        yield instance


def refresh_running(instance: dg.DagsterInstance, run_id: str) -> None:
    """An hourly refresh_job run of yesterday (03-28) and today, started and not finished."""
    tags = days("2026-03-28", "2026-03-29")
    instance.add_run(
        dg.DagsterRun(job_name="refresh_job", run_id=run_id, status=dg.DagsterRunStatus.STARTED, tags=tags)
    )


@pytest.mark.postgres
def test_daily_job_waits_for_a_refresh_of_its_day_that_failed_or_is_running(
    pg: psycopg.Connection, pg_resource: PostgresResource, instance: dg.DagsterInstance
) -> None:
    """Yesterday's daily_job is requested once, and not while a refresh_job of yesterday failed (its
    alert open) or runs: the hourly ticks after 02:30 try again."""
    key = refresh_failed(pg, "r-1", "2026-03-27", "2026-03-28")
    refresh_failed(pg, "r-0", "2026-03-20", "2026-03-20")  # another day's failure holds nothing up
    held = daily_tick(instance, pg_resource, 2)
    assert isinstance(held, dg.SkipReason)
    assert "refresh_job failed for 2026-03-27..2026-03-28" in (held.skip_message or "")

    resolve_condition(pg, key, "run r-2 of refresh_job succeeded")
    pg.commit()
    refresh_running(instance, "r-3")
    held = daily_tick(instance, pg_resource, 3)
    assert isinstance(held, dg.SkipReason)
    assert "refresh_job run r-3 for 2026-03-28..2026-03-29 is started" in (held.skip_message or "")

    success = dg.DagsterEvent(event_type_value=dg.DagsterEventType.RUN_SUCCESS.value, job_name="refresh_job")
    instance.handle_run_event("r-3", success)
    request = daily_tick(instance, pg_resource, 4)
    assert isinstance(request, dg.RunRequest)
    assert request.partition_key == "2026-03-28" and request.run_key == "daily-job-2026-03-28"
    instance.add_run(
        dg.DagsterRun(job_name="daily_job", run_id="d-1", tags={"dagster/run_key": request.run_key})
    )
    again = daily_tick(instance, pg_resource, 5)  # one run a day
    assert isinstance(again, dg.SkipReason) and "requested already (run d-1)" in (again.skip_message or "")


@pytest.mark.postgres
def test_the_last_try_of_the_day_waits_for_a_failed_refresh_only(
    pg: psycopg.Connection, pg_resource: PostgresResource, instance: dg.DagsterInstance
) -> None:
    """A refresh still running at every half hour past (slow refreshes) must not cost the day its
    report: the 23:30 try requests it anyway. A failed refresh still holds it, and says what then."""
    refresh_running(instance, "r-9")
    assert isinstance(daily_tick(instance, pg_resource, 22), dg.SkipReason)
    assert isinstance(daily_tick(instance, pg_resource, 23), dg.RunRequest)
    refresh_failed(pg, "r-8", "2026-03-28", "2026-03-28")
    held = daily_tick(instance, pg_resource, 23)
    assert isinstance(held, dg.SkipReason) and "the day's last try" in (held.skip_message or "")


def days(first: str, last: str) -> dict[str, str]:
    return partition_range_tags(date.fromisoformat(first), date.fromisoformat(last))


def test_daily_job_follows_a_refresh_of_days_before_yesterday_that_no_schedule_has() -> None:
    """Late days, a backfill, a person's re-run: daily_job over their days before yesterday; not over
    yesterday (scheduled) or today (not complete), nor after a refresh the CLI ran (it runs its own).
    After the schedule's last try of the day, yesterday is followed too."""
    today = datetime(2026, 3, 29, 10, 0, tzinfo=UTC)
    late = follow_request("r-1", {**days("2026-01-05", "2026-01-06"), "metrify/trigger": "late_days"}, today)
    assert late is not None and late.run_key == "after-r-1" and late.tags == {
        **days("2026-01-05", "2026-01-06"), "metrify/trigger": "late_days"
    }  # fmt: skip
    backfill = follow_request("r-2", days("2026-03-20", "2026-03-29"), today)
    assert backfill is not None and backfill.tags == days("2026-03-20", "2026-03-27")
    assert follow_request("r-3", days("2026-03-28", "2026-03-29"), today) is None  # the hourly refresh
    for cli in ("cli", "demo", "dlq-replay"):  # the commands run their own daily_job
        assert (
            follow_request("r-4", {**days("2026-01-05", "2026-01-05"), "metrify/trigger": cli}, today) is None
        )
    assert follow_request("r-5", {}, today) is None  # no days: nothing to follow
    # A person re-runs a CLI run from the UI: the re-execution carries the CLI's tags, and is followed.
    rerun = follow_request(
        "r-7", {**days("2026-01-05", "2026-01-05"), "metrify/trigger": "cli"}, today, reexecution=True
    )
    assert rerun is not None and rerun.tags == days("2026-01-05", "2026-01-05")
    late_rerun = follow_request(
        "r-8", {**days("2026-01-05", "2026-01-05"), "metrify/trigger": "late_days"}, today, reexecution=True
    )
    assert late_rerun is not None and late_rerun.tags["metrify/trigger"] == "late_days"
    late_evening = follow_request(
        "r-6", days("2026-03-28", "2026-03-29"), datetime(2026, 3, 29, 23, 31, tzinfo=UTC)
    )
    assert late_evening is not None and late_evening.tags == days("2026-03-28", "2026-03-28")


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


def test_the_sensor_requests_daily_job_after_a_late_days_refresh_succeeds(
    instance: dg.DagsterInstance,
) -> None:
    tags = {**days("2026-01-05", "2026-01-05"), "metrify/trigger": "late_days"}
    context = success_context(instance, "refresh_job", tags, "daily_after_refresh_sensor")
    run = context.dagster_run
    request = daily_after_refresh_sensor(context)
    assert isinstance(request, dg.RunRequest)
    assert request.run_key == f"after-{run.run_id}" and request.tags == tags
    assert daily_after_refresh_sensor.job_name == "daily_job"


def test_the_sensor_requests_daily_job_after_a_persons_rerun_of_a_cli_refresh(
    instance: dg.DagsterInstance,
) -> None:
    """The UI's re-run of a `metrify run` refresh copies its `metrify/trigger: cli` tag; it is a
    person's re-run all the same, so daily_job follows it (a trial saw the sensor skip it)."""
    tags = {**days("2026-01-05", "2026-01-05"), "metrify/trigger": "cli"}
    context = reexecuted_success_context(instance, tags, "daily_after_refresh_sensor")
    assert context.dagster_run.tags["metrify/trigger"] == "cli"  # what Dagster copies
    request = daily_after_refresh_sensor(context)
    assert isinstance(request, dg.RunRequest)
    assert request.tags == days("2026-01-05", "2026-01-05")
