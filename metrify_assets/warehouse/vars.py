"""The dbt vars that come from Python, so thresholds shared by Python and dbt have one source."""

from __future__ import annotations

from metrify_assets.grid.frequency import GRID_FREQUENCY
from metrify_assets.weather.degree_days import COOLING_BASE_C, HEATING_BASE_C


def dbt_vars() -> dict[str, float]:
    """Passed to every `dbt build` Dagster runs; `dbt_project.yml` holds the same values as defaults."""
    return {
        "grid_nominal_frequency_hz": GRID_FREQUENCY.nominal_hz,
        "grid_normal_band_hz": GRID_FREQUENCY.normal_band_hz,
        "grid_statutory_band_hz": GRID_FREQUENCY.statutory_band_hz,
        "heating_base_c": HEATING_BASE_C,
        "cooling_base_c": COOLING_BASE_C,
    }
