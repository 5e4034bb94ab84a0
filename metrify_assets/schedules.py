"""The platform's heartbeat: jobs over the downstream assets and their schedules.

Ingestion is driven by the landing (and Kafka) sensors, which catch up on whatever has arrived; the
schedules refresh what is derived from it, each run over its own day partitions:
- hourly: registry, the VEE series, anomaly scores, enrichment, grid stability and the dbt marts for
  yesterday and today (local days straddle UTC midnight), so the hourly marts are at most an hour behind;
- nightly: the VEE series, grid stability and the dbt marts over the incremental lookback (late
  readings), then the archive tier and the data-quality report of yesterday;
- weekly: the registry and the anomaly models retrained on their window (scoring uses them from the
  next run on);
- on late data: `late_days_sensor` re-materialises an older day that a new batch touched.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import dagster as dg

from metrify_assets.errors import RETRY_POLICY
from metrify_assets.late_days import build_late_days_sensor
from metrify_assets.partitions import partition_range_tags
from metrify_assets.warehouse.translator import WAREHOUSE_GROUP

WAREHOUSE = dg.AssetSelection.groups(WAREHOUSE_GROUP)
# Days the daily run rebuilds: dbt's `incremental_lookback_days`.
DAILY_LOOKBACK_DAYS = 3

refresh_job = dg.define_asset_job(
    "refresh_job",
    op_retry_policy=RETRY_POLICY,
    selection=dg.AssetSelection.assets(
        "meter_registry", "vee_meter_readings", "anomaly_scores", "enriched_meter_readings", "grid_stability"
    )
    | WAREHOUSE,
    description="Registry, VEE series, anomaly scores, enrichment, grid stability and the dbt marts for the "
    "days (partitions) of the run.",
)
daily_marts_job = dg.define_asset_job(
    "daily_marts_job",
    op_retry_policy=RETRY_POLICY,
    selection=dg.AssetSelection.assets("vee_meter_readings", "grid_stability") | WAREHOUSE,
    description="The VEE series, grid stability and the dbt marts over the last few days, taking late "
    "readings and samples into the billing-grade series, the grid figures and the daily facts.",
)
daily_job = dg.define_asset_job(
    "daily_job",
    op_retry_policy=RETRY_POLICY,
    selection=dg.AssetSelection.assets("archive_daily_readings", "data_quality_report"),
    description="Archive tier and data-quality report for the days (partitions) of the run.",
)
weekly_job = dg.define_asset_job(
    "weekly_job",
    op_retry_policy=RETRY_POLICY,
    selection=dg.AssetSelection.assets("meter_registry", "anomaly_model"),
    description="Retrain the anomaly models on their window (after loading the registry they learn segments "
    "and weather stations from); the next scoring runs use the new version.",
)


def days_ending(day: date, count: int) -> dict[str, str]:
    """Run tags for the `count` days up to and including `day`."""
    return partition_range_tags(day - timedelta(days=count - 1), day)


def scheduled_day(context: dg.ScheduleEvaluationContext) -> date:
    when = context.scheduled_execution_time or datetime.now()
    return when.date()


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


@dg.schedule(name="daily_job_schedule", job=daily_job, cron_schedule="30 2 * * *", execution_timezone="UTC")
def daily_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """Every night: yesterday's archive file and quality report."""
    day = scheduled_day(context) - timedelta(days=1)
    return dg.RunRequest(run_key=f"daily-job-{day}", partition_key=day.isoformat())


defs = dg.Definitions(
    jobs=[refresh_job, daily_marts_job, daily_job, weekly_job],
    schedules=[
        hourly_refresh_schedule,
        daily_marts_schedule,
        daily_schedule,
        dg.ScheduleDefinition(job=weekly_job, cron_schedule="0 4 * * 0", execution_timezone="UTC"),
    ],
    sensors=[build_late_days_sensor([refresh_job, daily_job])],
)
