"""The code location the freshness case's Dagster daemon loads: Metrify's definitions, except that
the meter-readings Kafka sensor has a minimum interval of `METRIFY_BENCH_SENSOR_INTERVAL` seconds
(default 1: it ticks on every pass of the daemon, every 5 s) and starts running by itself.

The production sensor's 30 s minimum interval would make each trial wait up to 30 s for a tick; the
tick itself is the same `kafka_tick` the production sensor evaluates, so only the interval differs.
"""

from __future__ import annotations

import os

import dagster as dg

from metrify_assets.contracts import METER_READINGS
from metrify_assets.definitions import defs as metrify_defs
from metrify_assets.ingestion.definitions import INGEST_JOBS
from metrify_assets.kafka.resource import KafkaResource
from metrify_assets.kafka.sensor import kafka_tick
from metrify_assets.resources import PostgresResource

SENSOR = f"kafka_{METER_READINGS.source}_sensor"


def fast_sensor(interval: int) -> dg.SensorDefinition:
    @dg.sensor(
        name=SENSOR,
        job=INGEST_JOBS[METER_READINGS.source],
        minimum_interval_seconds=interval,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def _sensor(
        context: dg.SensorEvaluationContext, kafka: KafkaResource, postgres: PostgresResource
    ) -> dg.SensorResult | dg.SkipReason:
        return kafka_tick(METER_READINGS, context.instance, context.cursor, kafka, postgres)

    return _sensor


@dg.definitions
def defs() -> dg.Definitions:
    base = metrify_defs()
    interval = int(os.environ.get("METRIFY_BENCH_SENSOR_INTERVAL") or 1)
    return dg.Definitions(
        assets=base.assets,
        asset_checks=base.asset_checks,
        jobs=base.jobs,
        schedules=base.schedules,
        sensors=[s for s in base.sensors or [] if s.name != SENSOR] + [fast_sensor(interval)],
        resources=base.resources,
    )
