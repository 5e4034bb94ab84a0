"""Grid frequency bands, defined once: the record rules use them, and dbt receives the nominal frequency.

`warehouse.vars.dbt_vars` passes the nominal frequency to every `dbt build` Dagster runs; the default
in `dbt_project.yml` (for a `dbt build` by hand) is checked against it by a test.

These bands judge single records. The system states (normal / alert / emergency) are decided over
minutes with the parameters of the node's synchronous area (`areas.py`, which takes its nominal
frequency from here); docs/grid.md relates the two.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FrequencyBands:
    nominal_hz: float = 50.0  # 60.0 in North America
    statutory_band_hz: float = 0.5  # +/- 500 mHz: GB statutory limits (records beyond are flagged)
    plausible_band_hz: float = 5.0  # +/- 5 Hz: beyond it a sample is not a real measurement (rejected)


GRID_FREQUENCY = FrequencyBands()
