"""What the model knows about a quarter-hour of the day it forecasts, built only from what is known at
the day's origin (its local midnight).

Load enters only through earlier local days: yesterday's value at the same slot (`lag_1d`), last
week's (`lag_7d`, also the seasonal-naive baseline), the mean of the last 4 same weekdays (`mean_4w`,
the other baseline) and yesterday's mean level. The calendar (slot, weekday, public holiday) is a
function of the day. Temperature is the one input from the forecast day itself: it stands for the
weather forecast a live run would have; the observed value plays that part where there is one (an
optimistic stand-in), and where there is none yet, yesterday's temperature at the same slot
(persistence, itself known at the origin). Heating and cooling degree-days follow from it.

tests/forecasting/test_leakage.py perturbs the load from the origin on and asserts no feature moves.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from functools import cache

import holidays
import numpy as np
import pandas as pd

from metrify_assets.forecasting.series import LoadSeries, as_days, day_intervals, day_matrix, lookup
from metrify_assets.weather.degree_days import COOLING_BASE_C, HEATING_BASE_C

FEATURES = (
    "slot",
    "weekday",
    "holiday",
    "lag_1d",
    "lag_7d",
    "mean_4w",
    "prev_day_mean",
    "temperature_c",
    "hdd",
    "cdd",
)
WEEKS = 4  # same weekdays `mean_4w` averages (fewer where the series is younger)


@cache
def _holidays(country: str, years: tuple[int, ...]) -> frozenset[date]:
    return frozenset(holidays.country_holidays(country, years=list(years)).keys())


def holiday_flags(days: pd.Series, country: str) -> np.ndarray:
    """1.0 on a public holiday of `country` (the `holidays` package), else 0.0."""
    if days.empty:
        return np.zeros(0)
    distinct = days.unique()
    observed = _holidays(country, tuple(sorted({d.year for d in distinct})))
    flags = pd.Series([float(d in observed) for d in distinct], index=distinct)
    return flags.reindex(days.to_numpy()).to_numpy(dtype="float64")


def build(series: LoadSeries, days: Sequence[date]) -> pd.DataFrame:
    """One row per quarter-hour of the local `days`: reading_start, local_date, horizon_hour, the
    FEATURES, and `actual` (the load, NaN where unknown; never an input)."""
    rows = day_intervals(list(days), series.timezone)
    load = day_matrix(series.load, series.timezone)
    d = as_days(rows["local_date"])
    slot = rows["slot"].to_numpy(dtype="int64")
    one_day = np.timedelta64(1, "D")
    rows["weekday"] = ((d.astype("int64") + 3) % 7).astype("float64")  # 1970-01-01 was a Thursday
    rows["holiday"] = holiday_flags(rows["local_date"], series.country)
    rows["lag_1d"] = lookup(load, d - one_day, slot)
    rows["lag_7d"] = lookup(load, d - 7 * one_day, slot)
    weeks = np.column_stack([lookup(load, d - 7 * k * one_day, slot) for k in range(1, WEEKS + 1)])
    rows["mean_4w"] = _nanmean(weeks)
    day_means = load.mean(axis=1)
    rows["prev_day_mean"] = day_means.reindex(pd.DatetimeIndex(d - one_day)).to_numpy()
    observed = series.temperature.reindex(pd.DatetimeIndex(rows["reading_start"])).to_numpy(dtype="float64")
    persistence = lookup(day_matrix(series.temperature, series.timezone), d - one_day, slot)
    rows["temperature_c"] = np.where(np.isnan(observed), persistence, observed)
    day_mean = rows.groupby("local_date")["temperature_c"].transform("mean")
    rows["hdd"] = (HEATING_BASE_C - day_mean).clip(lower=0.0)
    rows["cdd"] = (day_mean - COOLING_BASE_C).clip(lower=0.0)
    rows["slot"] = slot.astype("float64")
    rows["actual"] = series.load.reindex(pd.DatetimeIndex(rows["reading_start"])).to_numpy(dtype="float64")
    return rows


def _nanmean(values: np.ndarray) -> np.ndarray:
    """Row means over the values present; NaN where none is."""
    present = ~np.isnan(values)
    counts = present.sum(axis=1)
    sums = np.where(present, values, 0.0).sum(axis=1)
    return np.divide(sums, counts, out=np.full(len(values), np.nan), where=counts > 0)
