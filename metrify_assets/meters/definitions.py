"""The meters room's definitions."""

from __future__ import annotations

import dagster as dg

from metrify_assets.meters.anomaly.assets import anomaly_model, anomaly_scores
from metrify_assets.meters.enrichment import enriched_meter_readings
from metrify_assets.meters.registry import meter_registry, meter_registry_sensor, registry_job
from metrify_assets.meters.vee.assets import vee_meter_readings

defs = dg.Definitions(
    assets=[meter_registry, anomaly_model, anomaly_scores, enriched_meter_readings, vee_meter_readings],
    jobs=[registry_job],
    sensors=[meter_registry_sensor],
)
