"""Grid frequency bands, defined once: the record rules use them, and dbt receives them as vars.

`warehouse.vars.dbt_vars` passes these values to every `dbt build` Dagster runs; the defaults in
`dbt_project.yml` (for a `dbt build` by hand) are checked against them by a test.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FrequencyBands:
    nominal_hz: float = 50.0  # 60.0 in North America
    normal_band_hz: float = 0.2  # +/- 200 mHz: normal operation (beyond it the hour is in `alert`)
    statutory_band_hz: float = 0.5  # +/- 500 mHz: GB statutory limits (records beyond are flagged)
    plausible_band_hz: float = 5.0  # +/- 5 Hz: beyond it a sample is not a real measurement (rejected)


GRID_FREQUENCY = FrequencyBands()
