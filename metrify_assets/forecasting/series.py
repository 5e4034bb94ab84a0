"""A load series on the quarter-hour grid, and its local calendar: which intervals make a local day,
where that day starts (the forecast's origin), and the day x slot matrix the lags read.

A slot is the quarter-hour of the local wall clock (hour x 4 + minute // 15, 0..95), so "the same
quarter-hour last week" is the same time on the clock across a DST change; the repeated hour of an
autumn change averages into its slots, the skipped hour of a spring change has none.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, timedelta

import numpy as np
import pandas as pd

from metrify_assets.meters.days import days_between

STEP = pd.Timedelta(minutes=15)
SLOTS = 96
GAP_SLOTS = 4  # an hour


@dataclass(frozen=True)
class LoadSeries:
    """One series to forecast: net load (kWh per quarter-hour, negative = export) and the temperature
    at the same instants, both indexed by UTC interval starts (NaN where unknown)."""

    name: str
    load: pd.Series
    temperature: pd.Series
    timezone: str = "UTC"
    country: str = "GB"

    def before(self, origin: pd.Timestamp) -> LoadSeries:
        """The series as known at `origin`: load from `origin` on is unknown (the temperature stays, as
        the stand-in for the weather forecast a live run would have)."""
        return replace(self, load=self.load[self.load.index < origin])

    def local_days(self) -> list[date]:
        """The local days the load has any value on, in order."""
        stamps = pd.DatetimeIndex(self.load.dropna().index)
        return sorted(set(stamps.tz_convert(self.timezone).date)) if len(stamps) else []


def day_origin(day: date, timezone: str) -> pd.Timestamp:
    """The UTC instant the local `day` starts: a forecast for the day is made with data before it."""
    return pd.Timestamp(day.isoformat()).tz_localize(timezone).tz_convert("UTC")


def day_intervals(days: list[date], timezone: str) -> pd.DataFrame:
    """Every quarter-hour of the local `days`: reading_start (UTC), local_date, slot and
    horizon_hour (whole hours since the day's origin: 0..22, 23 or 24 with DST)."""
    wanted = sorted(set(days))
    if not wanted:
        return pd.DataFrame(
            {
                "reading_start": pd.Series(dtype="datetime64[ns, UTC]"),
                "local_date": pd.Series(dtype=object),
                "slot": pd.Series(dtype="int64"),
                "horizon_hour": pd.Series(dtype="int64"),
            }
        )
    # One range over the span, then the wanted days: a per-day loop cost ~1 ms a day.
    span = days_between(wanted[0], wanted[-1] + timedelta(days=1))
    origins = pd.DatetimeIndex([day_origin(day, timezone) for day in span])
    stamps = pd.date_range(origins[0], origins[-1], freq=STEP, inclusive="left")
    day_index = origins.searchsorted(stamps, side="right") - 1
    local = stamps.tz_convert(timezone)
    frame = pd.DataFrame(
        {
            "reading_start": stamps,
            "local_date": np.asarray(span, dtype=object)[day_index],
            "slot": (local.hour * 4 + local.minute // 15).to_numpy(dtype="int64"),
            "horizon_hour": ((stamps - origins[day_index]) // pd.Timedelta(hours=1)).to_numpy(dtype="int64"),
        }
    )
    if len(wanted) == len(span) - 1:
        return frame
    return frame[frame["local_date"].isin(set(wanted))].reset_index(drop=True)


def day_matrix(values: pd.Series, timezone: str) -> pd.DataFrame:
    """Values by local day (rows, datetime64 days) and slot (columns 0..95), the mean where a slot
    repeats. Up to GAP_SLOTS slots missing inside a day are interpolated from their neighbours: the
    hour a spring clock change skips would otherwise leave a hole in every lag of the day after."""
    values = values.dropna()
    if values.empty:
        return pd.DataFrame(index=pd.DatetimeIndex([]), columns=range(SLOTS), dtype="float64")
    local = pd.DatetimeIndex(values.index).tz_convert(timezone)
    frame = pd.DataFrame(
        {
            "local_date": local.tz_localize(None).normalize(),
            "slot": local.hour * 4 + local.minute // 15,
            "value": values.to_numpy(),
        }
    )
    matrix = frame.pivot_table(index="local_date", columns="slot", values="value", aggfunc="mean")
    full = matrix.reindex(columns=range(SLOTS)).astype("float64")
    return full.interpolate(axis=1, limit=GAP_SLOTS, limit_area="inside")


def as_days(days: pd.Series | np.ndarray | list[date]) -> np.ndarray:
    """Local days (dates or datetimes) as numpy days, the key of `day_matrix` rows."""
    return np.asarray(pd.to_datetime(pd.Series(days)).to_numpy(), dtype="datetime64[D]")


def lookup(matrix: pd.DataFrame, days: np.ndarray, slots: np.ndarray) -> np.ndarray:
    """matrix[day, slot] for each row (`days` as `as_days` gives them; NaN where the matrix has no
    such day)."""
    position = pd.DatetimeIndex(matrix.index).get_indexer(pd.DatetimeIndex(days.astype("datetime64[ns]")))
    found = position >= 0
    picked = np.full(len(days), np.nan)
    if found.any():
        picked[found] = matrix.to_numpy(dtype="float64")[position[found], slots[found]]
    return picked
