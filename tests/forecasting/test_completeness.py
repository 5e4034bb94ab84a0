"""`load_forecast_complete`'s severity: gaps in young series (a new deployment) warn, gaps in an
established series are errors."""

from __future__ import annotations

import dagster as dg

from metrify_assets.forecasting.assets import YOUNG_DAYS, completeness_severity, young_without_value


def test_a_new_deployments_gaps_warn_and_an_established_series_gaps_are_errors() -> None:
    trial = [(96, 1), (95, 0)]  # the trial: 4 meters over 2 days, 191 quarter-hours without a value
    assert young_without_value(trial) == 191
    assert completeness_severity(191, young_without_value(trial)) == dg.AssetCheckSeverity.WARN
    mixed = [*trial, (4, YOUNG_DAYS)]  # one established series with a gap: a real finding
    assert young_without_value(mixed) == 191
    assert completeness_severity(195, young_without_value(mixed)) == dg.AssetCheckSeverity.ERROR
