"""The dbt vars that come from Python, so thresholds shared by Python and dbt have one source."""

from __future__ import annotations

from metrify_assets.forecasting.backtest import MAPE_FLOOR_SHARE
from metrify_assets.grid.frequency import GRID_FREQUENCY
from metrify_assets.weather.conditions import WEATHER_CLASSES
from metrify_assets.weather.degree_days import COOLING_BASE_C, HEATING_BASE_C
from metrify_assets.weather.sensitivity import SENSITIVITY


def dbt_vars() -> dict[str, float | int]:
    """Passed to every `dbt build` Dagster runs; `dbt_project.yml` holds the same values as defaults."""
    return {
        "grid_nominal_frequency_hz": GRID_FREQUENCY.nominal_hz,
        "heating_base_c": HEATING_BASE_C,
        "cooling_base_c": COOLING_BASE_C,
        **WEATHER_CLASSES.dbt_vars(),
        **SENSITIVITY.dbt_vars(),
        "forecast_mape_floor_share": MAPE_FLOOR_SHARE,
    }
