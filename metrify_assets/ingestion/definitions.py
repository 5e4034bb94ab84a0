"""Ingestion's definitions: per source an ingest asset, its job (one batch per run), a landing and a Kafka sensor."""

from __future__ import annotations

import dagster as dg

from metrify_assets.contracts import CONTRACTS
from metrify_assets.ingestion.assets import INGEST_ASSETS
from metrify_assets.ingestion.kafka.sensor import build_kafka_sensor
from metrify_assets.ingestion.sensors import build_landing_sensor, ingest_job_name

# A system error is retried inside the run (the step's RETRY_POLICY, metrify_assets.errors); a run
# whose process died (killed, out of memory) is re-run by the daemon (`run_retries` in dagster.yaml)
# up to 3 times. A run that failed in its step is not re-run: its step already spent its retries, or
# hit a bug. Either way the sensors re-request any batch whose runs all failed: no hole is left.
RETRY_TAGS = {
    "dagster/max_retries": "3",
    "dagster/retry_strategy": "ALL_STEPS",
    "dagster/retry_on_asset_or_op_failure": "false",
}

INGEST_JOBS = {
    source: dg.define_asset_job(
        ingest_job_name(source),
        selection=dg.AssetSelection.assets(INGEST_ASSETS[source]),
        description=f"Ingest one {source} batch (set by the sensor's run config).",
        tags=RETRY_TAGS,
    )
    for source in CONTRACTS
}

defs = dg.Definitions(
    assets=list(INGEST_ASSETS.values()),
    jobs=list(INGEST_JOBS.values()),
    sensors=[build_landing_sensor(CONTRACTS[s], INGEST_JOBS[s]) for s in CONTRACTS]
    + [build_kafka_sensor(CONTRACTS[s], INGEST_JOBS[s]) for s in CONTRACTS],
)
