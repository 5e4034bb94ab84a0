"""A run's forecasts per series: the method the backtest chose, and the same answers whether the
series are forecast in this process or in a pool of workers."""

from __future__ import annotations

from datetime import date

import pandas as pd

from metrify_assets.forecasting import backtest as bt
from metrify_assets.forecasting.run import POOL_MIN_SERIES, forecast_many, forecast_series
from tests.forecasting.synthetic import synthetic


def test_the_chosen_method_forecasts_every_quarter_hour_of_the_day() -> None:
    series = synthetic(days=30, heating_kwh_per_degree=1.5)
    result = forecast_series(series, date(2026, 2, 4), window_days=21, backtest_days=5)
    assert result.origins == 5 and set(result.summary["method"]) == set(bt.METHODS)
    assert result.winner == bt.winner(result.summary)  # its forecast covers the day
    assert len(result.selected) == 96 and result.selected["p50"].notna().all()
    assert (result.selected["p10"] <= result.selected["p90"]).all()


def test_a_series_younger_than_a_week_is_forecast_from_yesterday() -> None:
    series = synthetic(days=3)
    result = forecast_series(series, date(2026, 1, 8), window_days=21, backtest_days=7)
    assert result.forecast.model is None and result.origins == 3
    assert result.winner == "persistence"
    assert len(result.selected) == 96 and result.selected["p50"].notna().all()
    yesterday = series.load[series.load.index >= pd.Timestamp("2026-01-07", tz="UTC")]
    assert (result.selected["p50"].to_numpy() == yesterday.to_numpy()).all()


def test_a_worker_pool_gives_the_answers_of_one_process() -> None:
    items = {f"s{i}": synthetic(days=23, seed=i) for i in range(POOL_MIN_SERIES)}
    day = date(2026, 1, 27)
    seen: list[tuple[int, int]] = []
    pooled = forecast_many(
        items, day, window_days=14, backtest_days=2, workers=2, progress=lambda d, t: seen.append((d, t))
    )
    alone = forecast_many(items, day, window_days=14, backtest_days=2, workers=1)
    assert list(pooled) == list(items) and seen[-1] == (len(items), len(items))
    for key in items:
        assert pooled[key].winner == alone[key].winner
        pd.testing.assert_frame_equal(pooled[key].forecast.forecasts, alone[key].forecast.forecasts)
