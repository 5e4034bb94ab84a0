"""Features against an independent reading of the series: lags at the same wall-clock quarter-hour,
the 4-weekday mean, the calendar, degree-days and the temperature's persistence fallback."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd

from metrify_assets.forecasting import features
from metrify_assets.forecasting.series import LoadSeries, day_intervals
from metrify_assets.weather.degree_days import HEATING_BASE_C
from tests.forecasting.synthetic import synthetic


def value_at(series: pd.Series, stamp: pd.Timestamp) -> float:
    return float(series.get(stamp, np.nan))


def test_lags_and_weekday_mean_are_the_same_quarter_hour_of_earlier_days() -> None:
    series = synthetic(days=40)
    day = date(2026, 2, 11)  # 37 days in: 4 same weekdays behind it
    rows = features.build(series, [day]).set_index("reading_start")
    for stamp in rows.index[[0, 33, 95]]:
        row = rows.loc[stamp]
        assert row["lag_1d"] == value_at(series.load, stamp - timedelta(days=1))
        assert row["lag_7d"] == value_at(series.load, stamp - timedelta(days=7))
        weeks = [value_at(series.load, stamp - timedelta(days=7 * k)) for k in range(1, 5)]
        assert np.isclose(row["mean_4w"], np.mean(weeks))
        assert row["actual"] == value_at(series.load, stamp)
    yesterday = series.load[(series.load.index >= "2026-02-10") & (series.load.index < "2026-02-11")]
    assert np.isclose(rows["prev_day_mean"].iloc[0], yesterday.mean())


def test_a_young_series_averages_the_weeks_it_has() -> None:
    series = synthetic(days=12)
    rows = features.build(series, [date(2026, 1, 15)])  # 10 days in: one same weekday behind it
    assert np.allclose(rows["mean_4w"], rows["lag_7d"])
    assert features.build(series, [date(2026, 1, 6)])["lag_7d"].isna().all()


def test_calendar_and_degree_days() -> None:
    series = synthetic(days=30, start="2025-12-01")
    rows = features.build(series, [date(2025, 12, 25), date(2025, 12, 27)])
    christmas = rows[rows["local_date"] == date(2025, 12, 25)]
    saturday = rows[rows["local_date"] == date(2025, 12, 27)]
    assert (christmas["holiday"] == 1.0).all() and (saturday["holiday"] == 0.0).all()
    assert (christmas["weekday"] == 3.0).all() and (saturday["weekday"] == 5.0).all()
    mean_temp = series.temperature[christmas["reading_start"]].mean()
    assert np.allclose(christmas["hdd"], max(HEATING_BASE_C - mean_temp, 0.0))
    assert (christmas["cdd"] == 0.0).all()


def test_without_a_temperature_for_the_day_yesterdays_stands_in() -> None:
    full = synthetic(days=20)
    cut = full.temperature[full.temperature.index < pd.Timestamp("2026-01-20", tz="UTC")]
    series = LoadSeries(full.name, full.load, cut, full.timezone, full.country)
    rows = features.build(series, [date(2026, 1, 20)])
    expected = full.temperature[rows["reading_start"] - pd.Timedelta(days=1)].to_numpy()
    assert np.allclose(rows["temperature_c"], expected)


def test_dst_days_have_their_own_number_of_quarter_hours() -> None:
    spring = day_intervals([date(2026, 3, 29)], "Europe/London")
    autumn = day_intervals([date(2026, 10, 25)], "Europe/London")
    assert len(spring) == 92 and spring["horizon_hour"].max() == 22
    assert len(autumn) == 100 and autumn["horizon_hour"].max() == 24
    assert autumn["slot"].value_counts().max() == 2  # the repeated hour shares its slots


def test_the_day_after_a_spring_clock_change_has_every_lag() -> None:
    series = synthetic(days=9, start="2026-03-23", timezone="Europe/London")
    rows = features.build(series, [date(2026, 3, 30)])  # the 29th skipped 01:00-02:00 local
    assert len(rows) == 96 and rows["lag_1d"].notna().all() and rows["lag_7d"].notna().all()
    local = pd.DatetimeIndex(series.load.index).tz_convert("Europe/London")
    sunday = series.load[local.date == date(2026, 3, 29)]
    before, after = sunday.iloc[3], sunday.iloc[4]  # 00:45 and 02:00 local
    filled = rows.set_index("slot")["lag_1d"]
    assert np.allclose(filled[[4.0, 5.0, 6.0, 7.0]], before + (after - before) * np.arange(1, 5) / 5)
