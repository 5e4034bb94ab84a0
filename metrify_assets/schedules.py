"""The platform's heartbeat: jobs over the downstream assets and their schedules.

Ingestion is driven by the landing (and Kafka) sensors, which catch up on whatever has arrived; the
schedules refresh what is derived from it:
- hourly: registry, anomaly scores, enrichment and the dbt marts for yesterday and today (local days
  straddle UTC midnight), so the hourly marts are at most an hour behind;
- daily: the dbt marts over the incremental lookback (late readings), the archive tier and the
  data-quality report;
- weekly: anomaly model retraining (re-scoring a quarter of history) and the retention pass
  (re-archiving a year of days into the lake).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import dagster as dg

from metrify_assets.warehouse.assets import partition_range_tags
from metrify_assets.warehouse.translator import WAREHOUSE_GROUP

WAREHOUSE = dg.AssetSelection.groups(WAREHOUSE_GROUP)
# Days the daily run rebuilds: dbt's `incremental_lookback_days`.
DAILY_LOOKBACK_DAYS = 3
RETRAIN_LOOKBACK_DAYS = 91
RETENTION_ARCHIVE_DAYS = 366

refresh_job = dg.define_asset_job(
    "refresh_job",
    selection=dg.AssetSelection.assets("meter_registry", "anomaly_scores", "enriched_meter_readings")
    | WAREHOUSE,
    description="Registry, anomaly scores, enrichment and the dbt marts for the partitions (days) of the run.",
)
daily_marts_job = dg.define_asset_job(
    "daily_marts_job",
    selection=WAREHOUSE,
    description="The dbt marts over the last few days, taking late readings into the daily facts.",
)
daily_job = dg.define_asset_job(
    "daily_job",
    selection=dg.AssetSelection.assets("archive_daily_readings", "data_quality_report"),
    description="Archive tier and data-quality report.",
)
weekly_job = dg.define_asset_job(
    "weekly_job",
    selection=dg.AssetSelection.assets("anomaly_scores", "archive_daily_readings"),
    description="Anomaly model retraining over a longer window, and the retention pass over the archive.",
    config={
        "ops": {
            "anomaly_scores": {"config": {"lookback_days": RETRAIN_LOOKBACK_DAYS}},
            "archive_daily_readings": {"config": {"max_days": RETENTION_ARCHIVE_DAYS}},
        }
    },
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


defs = dg.Definitions(
    jobs=[refresh_job, daily_marts_job, daily_job, weekly_job],
    schedules=[
        hourly_refresh_schedule,
        daily_marts_schedule,
        dg.ScheduleDefinition(job=daily_job, cron_schedule="30 2 * * *", execution_timezone="UTC"),
        dg.ScheduleDefinition(job=weekly_job, cron_schedule="0 4 * * 0", execution_timezone="UTC"),
    ],
)
