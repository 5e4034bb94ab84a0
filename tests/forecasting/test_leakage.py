"""No look-ahead: every feature of a forecast day, and every forecast, is the same whatever the load
did from the day's origin on. The check is shown to catch a feature that reads the future."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import numpy as np
import pandas as pd
import pytest

from metrify_assets.forecasting import features
from metrify_assets.forecasting.backtest import forecast_day
from metrify_assets.forecasting.series import (
    LoadSeries,
    as_days,
    day_intervals,
    day_matrix,
    day_origin,
    lookup,
)
from tests.forecasting.synthetic import synthetic

Builder = Callable[[LoadSeries, list[date]], pd.DataFrame]


def future_perturbed(series: LoadSeries, origin: pd.Timestamp) -> LoadSeries:
    """The same series with the load from `origin` on scrambled (and 1000 added)."""
    after = series.load.index >= origin
    rng = np.random.default_rng(0)
    scrambled = series.load.copy()
    scrambled[after] = rng.permutation(np.array(scrambled[after])) + 1000.0
    return LoadSeries(series.name, scrambled, series.temperature, series.timezone, series.country)


def leaking_features(build: Builder, series: LoadSeries, day: date) -> list[str]:
    """The feature columns of `day` that change when the load from its origin on changes."""
    perturbed = future_perturbed(series, day_origin(day, series.timezone))
    before, after = build(series, [day]), build(perturbed, [day])
    columns = [c for c in before.columns if c not in ("actual",)]
    return [c for c in columns if not before[c].equals(after[c])]


def with_future_feature(series: LoadSeries, days: list[date]) -> pd.DataFrame:
    """A builder with one feature from the future: the load at the same slot the next day."""
    rows = features.build(series, days)
    matrix = day_matrix(series.load, series.timezone)
    ahead = as_days(rows["local_date"]) + np.timedelta64(1, "D")
    return rows.assign(lag_minus_1d=lookup(matrix, ahead, rows["slot"].to_numpy(dtype="int64")))


@pytest.mark.parametrize(
    ("timezone", "day"), [("UTC", date(2026, 2, 9)), ("Europe/London", date(2026, 3, 29))]
)
def test_no_feature_reads_the_load_from_the_origin_on(timezone: str, day: date) -> None:
    series = synthetic(days=60, start="2026-01-05", timezone=timezone)
    assert leaking_features(features.build, series, day) == []
    assert len(day_intervals([day], timezone)) == (92 if day == date(2026, 3, 29) else 96)


def test_the_check_catches_a_feature_from_the_future() -> None:
    series = synthetic(days=40)
    assert leaking_features(with_future_feature, series, date(2026, 1, 30)) == ["lag_minus_1d"]


def test_forecasts_do_not_change_with_the_future() -> None:
    series = synthetic(days=24)
    day = date(2026, 1, 21)
    perturbed = future_perturbed(series, day_origin(day, series.timezone))
    first = forecast_day(series, day, window_days=15)
    second = forecast_day(perturbed, day, window_days=15)
    assert first.model is not None
    pd.testing.assert_frame_equal(first.forecasts, second.forecasts)
    # the perturbation was real: the day's actual load differs
    assert not series.load.equals(perturbed.load)
