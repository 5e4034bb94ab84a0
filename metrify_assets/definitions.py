"""Metrify's code location: each room's definitions merged, with resources for this environment."""

from __future__ import annotations

import dagster as dg

from metrify_assets import run_alerts, schedules
from metrify_assets.alerts import sensor as alert_delivery
from metrify_assets.env import resolve_settings
from metrify_assets.forecasting import definitions as forecasting
from metrify_assets.grid import definitions as grid
from metrify_assets.ingestion import definitions as ingestion
from metrify_assets.lifecycle import assets as lifecycle
from metrify_assets.meters import definitions as meters
from metrify_assets.observability.runs import configure_location
from metrify_assets.quality import score_checks
from metrify_assets.reporting import assets as reporting
from metrify_assets.resources.build import build_resources
from metrify_assets.warehouse import definitions as warehouse


@dg.definitions
def defs() -> dg.Definitions:
    """Loaded lazily by Dagster, so the environment is read when the location loads, not at import."""
    settings = resolve_settings()
    return dg.Definitions.merge(
        ingestion.defs,
        score_checks.defs,
        meters.defs,
        grid.defs,
        forecasting.defs,
        warehouse.build_defs(),
        lifecycle.defs,
        reporting.defs,
        schedules.defs,
        run_alerts.defs,
        alert_delivery.defs,
        # Logs and traces of this process and its runs (docs/operations.md#logs). Every job's steps run
        # in its run's process: a step process started by the multiprocess executor would import the
        # whole code location again (about 8 s a step here), where a run's steps take seconds.
        dg.Definitions(
            resources=build_resources(settings),
            loggers=configure_location(settings),
            executor=dg.in_process_executor,
        ),
    )
