"""The platform's heartbeat: jobs over the downstream assets and their schedules."""

from __future__ import annotations

import dagster as dg

REFRESH_SELECTION = dg.AssetSelection.assets(
    "meter_registry", "anomaly_scores", "enriched_meter_readings"
) | dg.AssetSelection.groups("warehouse")

refresh_job = dg.define_asset_job(
    "refresh_job",
    selection=REFRESH_SELECTION,
    description="Registry, anomaly scores, enrichment and the dbt marts over what has been ingested.",
)
daily_job = dg.define_asset_job(
    "daily_job",
    selection=dg.AssetSelection.assets("archive_daily_readings", "data_quality_report"),
    description="Archive tier and data-quality report.",
)

defs = dg.Definitions(
    jobs=[refresh_job, daily_job],
    schedules=[
        dg.ScheduleDefinition(job=refresh_job, cron_schedule="7 * * * *", execution_timezone="UTC"),
        dg.ScheduleDefinition(job=daily_job, cron_schedule="30 2 * * *", execution_timezone="UTC"),
    ],
)
