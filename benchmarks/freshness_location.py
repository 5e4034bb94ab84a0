"""The code location the freshness case's Dagster daemon loads: Metrify's definitions, except that
the meter-readings Kafka sensor has a minimum interval of `METRIFY_BENCH_SENSOR_INTERVAL` seconds
(default 1: it ticks on every pass of the daemon, every 5 s) and starts running by itself.

The production sensor's 30 s minimum interval would make each trial wait up to 30 s for a tick; the
sensor is built by the same `build_kafka_sensor`, so only the interval and the default status differ.
"""

from __future__ import annotations

import os

import dagster as dg

from metrify_assets.contracts import METER_READINGS
from metrify_assets.definitions import defs as metrify_defs
from metrify_assets.ingestion.definitions import INGEST_JOBS
from metrify_assets.ingestion.kafka.sensor import build_kafka_sensor

SENSOR = f"kafka_{METER_READINGS.source}_sensor"


@dg.definitions
def defs() -> dg.Definitions:
    base = metrify_defs()
    interval = int(os.environ.get("METRIFY_BENCH_SENSOR_INTERVAL") or 1)
    return dg.Definitions(
        assets=base.assets,
        asset_checks=base.asset_checks,
        jobs=base.jobs,
        schedules=base.schedules,
        sensors=[s for s in base.sensors or [] if s.name != SENSOR]
        + [
            build_kafka_sensor(
                METER_READINGS,
                INGEST_JOBS[METER_READINGS.source],
                minimum_interval_seconds=interval,
                default_status=dg.DefaultSensorStatus.RUNNING,
            )
        ],
        resources=base.resources,
        executor=base.executor,
        loggers=base.loggers,
    )
