"""Time axes of a run: UTC instants on a fixed step, expressed in a local timezone with its offset.

Generating on UTC instants is what makes DST right: a 23-hour local day simply has fewer instants
(92 quarter-hours on 2026-03-29 in Europe/London), and every timestamp carries the offset in force.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import numpy.typing as npt
import pandas as pd

from metrify_assets.contracts import iso_with_offset


@dataclass(frozen=True)
class TimeGrid:
    """Instants `utc`, their local ISO strings, local clock hour, weekday and local day."""

    utc: pd.DatetimeIndex
    iso: list[str]  # e.g. "2026-03-29T02:00:00+01:00"
    hour: npt.NDArray[np.float64]  # local clock time in hours, 0..24
    weekend: npt.NDArray[np.bool_]
    day: list[date]  # local calendar day of each instant

    def __len__(self) -> int:
        return len(self.utc)


def local_grid(start: date, days: int, step_minutes: int, timezone: str) -> TimeGrid:
    """All instants from local midnight of `start` to local midnight `days` later, every step."""
    first = pd.Timestamp(start).tz_localize(timezone)
    end = pd.Timestamp(start + timedelta(days=days)).tz_localize(timezone)
    utc = pd.date_range(
        first.tz_convert("UTC"), end.tz_convert("UTC"), freq=f"{step_minutes}min", inclusive="left"
    )
    local = utc.tz_convert(timezone)
    hour = np.asarray(local.hour + local.minute / 60.0, dtype=np.float64)
    weekend = np.asarray(local.day_of_week >= 5, dtype=np.bool_)
    return TimeGrid(
        utc=utc,
        iso=iso_with_offset(local),
        hour=hour,
        weekend=weekend,
        day=[ts.date() for ts in local],
    )


def ou_process(
    rng: np.random.Generator, steps: int, series: int, std: float, correlation_steps: float
) -> npt.NDArray[np.float64]:
    """Ornstein-Uhlenbeck paths (series x steps), stationary std `std`, exact discretisation.

    The recursion is a short loop over time, vectorised across series.
    """
    a = float(np.exp(-1.0 / correlation_steps))
    shocks = rng.standard_normal((series, steps)) * std * np.sqrt(1.0 - a * a)
    out = np.empty((series, steps))
    out[:, 0] = rng.standard_normal(series) * std
    for k in range(1, steps):
        out[:, k] = a * out[:, k - 1] + shocks[:, k]
    return out
