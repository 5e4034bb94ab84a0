"""The platform's heartbeat: jobs over the downstream assets and their schedules.

Ingestion is driven by the landing (and Kafka) sensors, which catch up on whatever has arrived; the
schedules refresh what is derived from it, each run over its own day partitions:
- hourly: registry, the VEE series, anomaly scores, enrichment, grid stability and the dbt marts for
  yesterday and today (local days straddle UTC midnight), so the hourly marts are at most an hour behind;
  the warehouse group brings the dbt source freshness checks along (warehouse/source_freshness.py), as
  it does to the nightly marts run;
- nightly: the VEE series, grid stability and the dbt marts over the incremental lookback (late
  readings), then the warm tier (the day's verified lake copy), the data-quality report of yesterday
  and the load forecast for today from the data up to yesterday (docs/forecasting.md). `daily_job`
  reads what `refresh_job` validates, so it waits while a refresh of yesterday has failed (its open
  alert) or has not finished, trying again every hour of the day;
- weekly: the registry and the anomaly models retrained on their window (scoring uses them from the
  next run on), and the lifecycle: days due move to the cold and archive tiers, then retention cleans
  up (docs/lifecycle.md);
- on late data: `late_days_sensor` re-runs `refresh_job` for an older day that a new batch touched,
  and `daily_after_refresh_sensor` runs `daily_job` for the older days of each `refresh_job` that
  succeeds (late days, a backfill, a person's re-run), so `daily_job` never runs ahead of it.

The jobs set no retry policy: each Python asset retries its system errors and fails at once on a
bug (metrify_assets/errors.py), so a bug does not hold a run up for its retries' backoff.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import dagster as dg
import psycopg

from metrify_assets.late_days import LATE_DAYS_TRIGGER, build_late_days_sensor
from metrify_assets.partitions import TRIGGER_TAG, overlaps, partition_range_tags
from metrify_assets.resources import PostgresResource
from metrify_assets.run_alerts import day_range, days_text, failed_days, run_days
from metrify_assets.warehouse.paths import WAREHOUSE_GROUP

WAREHOUSE = dg.AssetSelection.groups(WAREHOUSE_GROUP)
# Days the daily run rebuilds: dbt's `incremental_lookback_days`.
DAILY_LOOKBACK_DAYS = 3

# Runs that build the dbt marts carry this tag; the run coordinator lets one of them run at a time
# (deploy/dagster.yaml, deploy/helm/values.yaml): concurrent builds would contend for the same marts.
WAREHOUSE_TAGS = {"metrify/warehouse": "dbt"}
refresh_job = dg.define_asset_job(
    "refresh_job",
    tags=WAREHOUSE_TAGS,
    selection=dg.AssetSelection.assets(
        "meter_registry", "vee_meter_readings", "anomaly_scores", "enriched_meter_readings", "grid_stability"
    )
    | WAREHOUSE,
    description="Registry, VEE series, anomaly scores, enrichment, grid stability and the dbt marts for the "
    "days (partitions) of the run.",
)
daily_marts_job = dg.define_asset_job(
    "daily_marts_job",
    tags=WAREHOUSE_TAGS,
    selection=dg.AssetSelection.assets("vee_meter_readings", "grid_stability") | WAREHOUSE,
    description="The VEE series, grid stability and the dbt marts over the last few days, taking late "
    "readings and samples into the billing-grade series, the grid figures and the daily facts.",
)
# The forecast and what dbt builds from it (staging views, fct_load_forecast, fct_forecast_accuracy):
# the marts of a forecast exist when the nightly run ends, not an hour later.
FORECAST = dg.AssetSelection.assets("load_forecast").downstream()
daily_job = dg.define_asset_job(
    "daily_job",
    tags=WAREHOUSE_TAGS,
    selection=dg.AssetSelection.assets("warm_tier", "data_quality_report") | FORECAST,
    description="Warm tier (verified lake copies), data-quality report, and the load forecast for the "
    "day after with its marts, for the days (partitions) of the run.",
)
TRAINING_ASSETS = ("meter_registry", "anomaly_model")
LIFECYCLE_TIERS = ("cold_tier", "archive_tier")
weekly_job = dg.define_asset_job(
    "weekly_job",
    selection=dg.AssetSelection.assets(*TRAINING_ASSETS, *LIFECYCLE_TIERS, "retention_cleanup"),
    description="Retrain the anomaly models on their window (after loading the registry they learn segments "
    "and weather stations from; the next scoring runs use the new version); move the days due to the cold "
    "and archive tiers over the run's days; then apply retention.",
)


def days_ending(day: date, count: int) -> dict[str, str]:
    """Run tags for the `count` days up to and including `day`."""
    return partition_range_tags(day - timedelta(days=count - 1), day)


def scheduled_time(context: dg.ScheduleEvaluationContext) -> datetime:
    return context.scheduled_execution_time or datetime.now(UTC)


def scheduled_day(context: dg.ScheduleEvaluationContext) -> date:
    return scheduled_time(context).date()


@dg.schedule(
    name="refresh_job_schedule", job=refresh_job, cron_schedule="7 * * * *", execution_timezone="UTC"
)
def hourly_refresh_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """Every hour: the marts for yesterday and today."""
    day = scheduled_day(context)
    return dg.RunRequest(run_key=f"hourly-{context.scheduled_execution_time}", tags=days_ending(day, 2))


@dg.schedule(job=daily_marts_job, cron_schedule="15 2 * * *", execution_timezone="UTC")
def daily_marts_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """Every night: the marts over the lookback days up to yesterday."""
    day = scheduled_day(context) - timedelta(days=1)
    return dg.RunRequest(run_key=f"daily-{day}", tags=days_ending(day, DAILY_LOOKBACK_DAYS))


# Runs the daemon has not finished yet (queued included): `daily_job` waits for those of the jobs it
# reads from.
UNFINISHED = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def refresh_holdup(
    conn: psycopg.Connection, instance: dg.DagsterInstance, first: date, last: date, unfinished: bool = True
) -> str | None:
    """Why `daily_job` must not run over `first`..`last` yet, or None. Its forecast and report read
    the readings `refresh_job` validates, so it waits for a refresh of those days that failed for
    good and no run has made up for (its open alert: the rule `metrify run` keeps within a command),
    and, with `unfinished`, for a `refresh_job` or `daily_marts_job` of them still queued or running
    (the run queue would start them in order, but the refresh may yet fail)."""
    for _, failed in failed_days(conn, ["refresh_job"]):
        if overlaps((first, last), day_range(failed)):
            return f"refresh_job failed for {days_text(failed)} (its run_failure alert is open)"
    for job in ("refresh_job", "daily_marts_job") if unfinished else ():
        for run in instance.get_runs(dg.RunsFilter(job_name=job, statuses=UNFINISHED)):
            days = run_days(run.tags)
            if days and overlaps((first, last), day_range(days)):
                return f"{job} run {run.run_id} for {days_text(days)} is {run.status.value.lower()}"
    return None


LAST_DAILY_HOUR = 23  # the daily schedule's last try of a day (UTC)


@dg.schedule(
    name="daily_job_schedule",
    job=daily_job,
    cron_schedule=f"30 2-{LAST_DAILY_HOUR} * * *",
    execution_timezone="UTC",
)
def daily_schedule(
    context: dg.ScheduleEvaluationContext, postgres: PostgresResource
) -> dg.RunRequest | dg.SkipReason:
    """Every night: yesterday's archive file and quality report, and today's load forecast. One run a
    day, at 02:30 or, while `refresh_holdup` holds it, at the first half hour past after that. The
    last try waits for a failed refresh only: runs still going every half hour past (slow refreshes)
    must not leave the day without its report, and the run queue starts them first anyway."""
    when = scheduled_time(context)
    day = when.date() - timedelta(days=1)
    run_key = f"daily-job-{day}"
    done = context.instance.get_runs(
        dg.RunsFilter(job_name="daily_job", tags={"dagster/run_key": run_key}), limit=1
    )
    if done:
        return dg.SkipReason(f"daily_job for {day} was requested already (run {done[0].run_id})")
    last_try = when.hour >= LAST_DAILY_HOUR
    with postgres.connect() as conn:
        holdup = refresh_holdup(conn, context.instance, day, day, unfinished=not last_try)
    if holdup is not None:
        then = (
            "the day's last try: daily_job follows a refresh_job of it that succeeds later (run by a "
            "person, or by `metrify run`)"
            if last_try
            else "the next half hour past tries again"
        )
        return dg.SkipReason(f"daily_job for {day} waits: {holdup}; {then}")
    return dg.RunRequest(run_key=run_key, partition_key=day.isoformat())


def follow_request(
    run_id: str, tags: dict[str, str], now: datetime, reexecution: bool = False
) -> dg.RunRequest | None:
    """The `daily_job` run that follows a successful `refresh_job` run at `now` (UTC): over its
    complete days that `daily_schedule` no longer tries (before yesterday; yesterday too after the
    day's last try), for a run of `late_days_sensor`, one without a trigger tag (a backfill, a
    person's launch) or a `reexecution` (a person's re-run from the UI, which copies the original
    run's tags, trigger included); the CLI tags its runs with another trigger and runs `daily_job`
    after them itself (orchestration/catchup.py). Pure: unit-tested."""
    days = run_days(tags)
    if reexecution and tags.get(TRIGGER_TAG) != LATE_DAYS_TRIGGER:
        tags = {k: v for k, v in tags.items() if k != TRIGGER_TAG}  # not the CLI's run any more
    if days is None or tags.get(TRIGGER_TAG, LATE_DAYS_TRIGGER) != LATE_DAYS_TRIGGER:
        return None
    tried = (now.hour, now.minute) >= (LAST_DAILY_HOUR, 30)
    newest = now.date() - timedelta(days=1 if tried else 2)
    first, last = day_range(days)
    last = min(last, newest)
    if first > last:
        return None
    trigger = {TRIGGER_TAG: tags[TRIGGER_TAG]} if TRIGGER_TAG in tags else {}
    return dg.RunRequest(run_key=f"after-{run_id}", tags={**partition_range_tags(first, last), **trigger})


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    name="daily_after_refresh_sensor",
    monitored_jobs=[refresh_job],
    request_job=daily_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="After a refresh_job run succeeds for complete days the daily schedule no longer tries (late "
    "days, a backfill, a re-run), runs daily_job over them: the warm tier, report and forecast follow the "
    "refreshed readings.",
)
def daily_after_refresh_sensor(context: dg.RunStatusSensorContext) -> dg.RunRequest | dg.SkipReason:
    run = context.dagster_run
    request = follow_request(
        run.run_id, dict(run.tags), datetime.now(UTC), reexecution=run.parent_run_id is not None
    )
    if request is None:
        return dg.SkipReason(
            f"refresh_job run {run.run_id}: no daily_job follows (the CLI ran its own, or its days are "
            "today or yesterday, which daily_job_schedule still tries)"
        )
    return request


def lifecycle_range(conn: psycopg.Connection, today: date) -> tuple[date, date] | None:
    """The days the weekly run's tier assets cover: the oldest to the newest day with a copy not yet
    archived, up to yesterday (the days outside have nothing to move), or None when no copy can move."""
    row = conn.execute("SELECT min(day), max(day) FROM ops.lifecycle_days WHERE tier <> 'archive'").fetchone()
    if row is None or row[0] is None:
        return None
    first, last = row[0], min(row[1], today - timedelta(days=1))
    return (first, last) if first <= last else None


def weekly_request(conn: psycopg.Connection, today: date, run_key: str) -> dg.RunRequest:
    """Training, the tiers over `lifecycle_range` and retention; without the tiers when nothing can move."""
    span = lifecycle_range(conn, today)
    if span is None:
        return dg.RunRequest(
            run_key=run_key,
            asset_selection=[dg.AssetKey(a) for a in (*TRAINING_ASSETS, "retention_cleanup")],
        )
    return dg.RunRequest(run_key=run_key, tags=partition_range_tags(*span))


@dg.schedule(name="weekly_job_schedule", job=weekly_job, cron_schedule="0 4 * * 0", execution_timezone="UTC")
def weekly_schedule(context: dg.ScheduleEvaluationContext, postgres: PostgresResource) -> dg.RunRequest:
    """Every Sunday: retraining, the lifecycle over the days with a copy still to move, and retention."""
    day = scheduled_day(context)
    with postgres.connect() as conn:
        return weekly_request(conn, day, f"weekly-{day}")


defs = dg.Definitions(
    jobs=[refresh_job, daily_marts_job, daily_job, weekly_job],
    schedules=[hourly_refresh_schedule, daily_marts_schedule, daily_schedule, weekly_schedule],
    sensors=[build_late_days_sensor(refresh_job), daily_after_refresh_sensor],
)
