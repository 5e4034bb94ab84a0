"""What the expected-consumption model knows about a reading, built from the reading, the registry and
the weather only: the meter's local clock and calendar, its segment, and the temperature at its
weather station.

Every feature of an interval starting at t is known at t: the calendar is a function of t, the
temperature is the station's latest observation at or before t (never a later one, never an average
that reaches past t), so the features of a day can be built as the day's readings arrive.
"""

from __future__ import annotations

from collections.abc import Iterable

import holidays
import numpy as np
import pandas as pd

from metrify_assets.contracts import UNREGISTERED
from metrify_assets.meters.days import local_times

DEFAULT_COUNTRY = "GB"
WEATHER_TOLERANCE = pd.Timedelta(hours=3)  # an older observation says nothing about now
REGISTRY_COLUMNS = ["meter_id", "segment", "weather_station_id", "timezone"]
WEATHER_COLUMNS = ["station_id", "observed_at", "temperature_c"]
PREPARED_COLUMNS = [
    "meter_id",
    "reading_start",
    "energy_kwh",
    "local_date",
    "local_hour",
    "weekday",
    "holiday",
    "temperature_c",
    "segment",
]


def empty_registry() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in REGISTRY_COLUMNS})


def empty_weather() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "station_id": pd.Series(dtype=object),
            "observed_at": pd.Series(dtype="datetime64[ns, UTC]"),
            "temperature_c": pd.Series(dtype="float64"),
        }
    )


def holiday_dates(country: str, years: Iterable[int]) -> set[object]:
    """Public holidays of `country` (an ISO code the `holidays` package knows) in `years`."""
    return set(holidays.country_holidays(country, years=sorted(set(years))).keys())


def prepare(
    readings: pd.DataFrame,
    registry: pd.DataFrame,
    weather: pd.DataFrame,
    country: str = DEFAULT_COUNTRY,
) -> pd.DataFrame:
    """Readings (meter_id, reading_start UTC, energy_kwh) with their context, in PREPARED_COLUMNS.

    A meter not in `registry` gets segment `unknown`, UTC as its clock and no temperature; a reading
    without an observation within WEATHER_TOLERANCE before it gets NaN (the model takes missing
    values). Rows keep the order of `readings`.
    """
    if readings.empty:
        return pd.DataFrame({c: pd.Series(dtype=_PREPARED_DTYPES[c]) for c in PREPARED_COLUMNS})
    frame = pd.DataFrame(
        {
            "meter_id": readings["meter_id"].astype(str).to_numpy(),
            "reading_start": pd.to_datetime(readings["reading_start"], utc=True)
            .astype("datetime64[ns, UTC]")
            .to_numpy(),
            "energy_kwh": readings["energy_kwh"].astype("float64").to_numpy(),
        }
    )
    meters = registry[REGISTRY_COLUMNS].drop_duplicates("meter_id").astype({"meter_id": str})
    frame = frame.merge(meters, on="meter_id", how="left")
    frame["segment"] = frame["segment"].fillna(UNREGISTERED).astype(str)
    frame["timezone"] = frame["timezone"].fillna("UTC").astype(str)
    _add_local_calendar(frame, country)
    frame["temperature_c"] = _temperature_before(frame, weather)
    return frame[PREPARED_COLUMNS]


_PREPARED_DTYPES = {
    "meter_id": "object",
    "reading_start": "datetime64[ns, UTC]",
    "energy_kwh": "float64",
    "local_date": "object",
    "local_hour": "float64",
    "weekday": "int64",
    "holiday": "int64",
    "temperature_c": "float64",
    "segment": "object",
}


def _add_local_calendar(frame: pd.DataFrame, country: str) -> None:
    """local_date, local_hour (hour + quarter as a fraction), weekday and holiday on the meter's clock."""
    local = local_times(frame["reading_start"], frame["timezone"])
    frame["local_date"] = local.dt.date.astype(object)
    frame["local_hour"] = (local.dt.hour + local.dt.minute / 60.0).astype("float64")
    frame["weekday"] = local.dt.day_of_week.astype("int64")
    days = holiday_dates(country, {d.year for d in frame["local_date"]})
    frame["holiday"] = frame["local_date"].isin(days).astype("int64")


def _temperature_before(frame: pd.DataFrame, weather: pd.DataFrame) -> pd.Series:
    """The latest temperature at the meter's station at or before each reading's start (NaN if none)."""
    result = pd.Series(np.nan, index=frame.index, dtype="float64")
    has_station = frame["weather_station_id"].notna()
    observed = weather.dropna(subset=["station_id", "observed_at", "temperature_c"])
    if not has_station.any() or observed.empty:
        return result
    left = pd.DataFrame(
        {
            "row": frame.index[has_station],
            "station_id": frame.loc[has_station, "weather_station_id"].astype(str).to_numpy(),
            "at": frame.loc[has_station, "reading_start"].to_numpy(),
        }
    ).sort_values("at", kind="stable")
    right = (
        pd.DataFrame(
            {
                "station_id": observed["station_id"].astype(str).to_numpy(),
                "at": pd.to_datetime(observed["observed_at"], utc=True)
                .astype("datetime64[ns, UTC]")
                .to_numpy(),
                "temperature_c": observed["temperature_c"].astype("float64").to_numpy(),
            }
        )
        .sort_values("at", kind="stable")
        .drop_duplicates(["station_id", "at"], keep="last")
    )
    left["at"] = pd.to_datetime(left["at"], utc=True).astype("datetime64[ns, UTC]")
    right["at"] = pd.to_datetime(right["at"], utc=True).astype("datetime64[ns, UTC]")
    joined = pd.merge_asof(
        left, right, on="at", by="station_id", direction="backward", tolerance=WEATHER_TOLERANCE
    )
    result.loc[joined["row"].to_numpy()] = joined["temperature_c"].to_numpy()
    return result
