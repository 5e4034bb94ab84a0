"""A run's forecasts per series: the method the backtest chose, and the same answers whether the
series are forecast in this process or in a pool of workers."""

from __future__ import annotations

from datetime import date

import pandas as pd

from metrify_assets.forecasting import backtest as bt
from metrify_assets.forecasting.assets import winners_table
from metrify_assets.forecasting.run import forecast_many, forecast_series, pool_pays
from metrify_assets.metadata import markdown_table
from tests.forecasting.synthetic import synthetic


def test_the_chosen_method_forecasts_every_quarter_hour_of_the_day() -> None:
    series = synthetic(days=30, heating_kwh_per_degree=1.5)
    result = forecast_series(series, date(2026, 2, 4), window_days=21, backtest_days=5)
    assert result.origins == 5 and set(result.summary["method"]) == set(bt.METHODS)
    assert result.winner == bt.winner(result.summary)  # its forecast covers the day
    assert len(result.selected) == 96 and result.selected["p50"].notna().all()
    assert (result.selected["p10"] <= result.selected["p90"]).all()


def test_a_series_younger_than_a_week_is_forecast_from_yesterday() -> None:
    """Only persistence has the history: the model and the weekly baselines write no rows (not a day of
    nulls); its interval comes from its own errors on the days that had a yesterday."""
    series = synthetic(days=3)
    result = forecast_series(series, date(2026, 1, 8), window_days=21, backtest_days=7)
    assert result.forecast.model is None and result.origins == 3
    assert result.winner == "persistence" and result.unforecast == 0
    assert set(result.forecast.forecasts["method"]) == {"persistence"}
    assert len(result.selected) == 96 and result.selected["p50"].notna().all()
    yesterday = series.load[series.load.index >= pd.Timestamp("2026-01-07", tz="UTC")]
    assert (result.selected["p50"].to_numpy() == yesterday.to_numpy()).all()
    assert (result.selected["p10"] < result.selected["p50"]).any()
    assert (result.selected["p10"] <= result.selected["p50"]).all()
    assert (result.selected["p50"] <= result.selected["p90"]).all()


def test_a_series_of_one_day_gets_a_point_forecast() -> None:
    """On its second day persistence has no error of its own to size an interval: P10 and P90 are
    null, not equal to the P50 (which would count every actual off it as a miss)."""
    series = synthetic(days=1)
    result = forecast_series(series, date(2026, 1, 6), window_days=21, backtest_days=7)
    assert result.winner == "persistence" and set(result.forecast.forecasts["method"]) == {"persistence"}
    assert len(result.selected) == 96 and result.selected["p50"].notna().all()
    assert result.selected["p10"].isna().all() and result.selected["p90"].isna().all()


def test_a_worker_pool_gives_the_answers_of_one_process() -> None:
    items = {f"s{i}": synthetic(days=23, seed=i) for i in range(6)}
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


def test_a_pool_starts_only_when_the_work_it_takes_over_outweighs_its_start() -> None:
    assert not pool_pays(0.2, 12, 2)  # a new deployment's short series: 1.2 s saved, 5 s to start
    assert pool_pays(1.1, 199, 2)  # two months of history per meter: ~109 s saved
    assert not pool_pays(60.0, 0, 2) and not pool_pays(60.0, 1, 2)  # nothing for a second worker
    assert not pool_pays(60.0, 10, 1)


def test_short_series_are_forecast_in_process_by_default() -> None:
    items = {f"s{i}": synthetic(days=3, seed=i) for i in range(4)}
    seen: list[tuple[int, int]] = []
    made = forecast_many(
        items, date(2026, 1, 8), window_days=21, backtest_days=7, progress=lambda d, t: seen.append((d, t))
    )
    assert list(made) == list(items) and seen == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert {r.winner for r in made.values()} == {"persistence"}


def test_a_choice_the_backtest_cannot_back_is_called_a_default() -> None:
    """Under COMPARE_DAYS of history persistence is chosen because nothing else can be compared with
    it: the metadata said it won, with a 0.0 margin and MAEs None/nan."""
    young = forecast_series(synthetic(days=7), date(2026, 1, 12), window_days=21)
    assert not bt.compared(young.summary) and young.winner == "persistence"
    assert young.basis == "no backtest to choose by yet: 7 days of history, 8 needed; persistence by default"
    first = forecast_series(synthetic(days=1), date(2026, 1, 6), window_days=21)
    assert first.basis == "no backtest to choose by yet: 1 day of history, 8 needed; persistence by default"
    week = forecast_series(synthetic(days=8), date(2026, 1, 13), window_days=21)
    assert bt.compared(week.summary) and week.basis.startswith("lowest backtest MAE of 3 methods over ")
    table = winners_table([("london", "residential", first), ("london", "commercial", week)])
    assert list(table["chosen"]) == ["persistence", week.winner]
    assert list(table["why"]) == [first.basis, week.basis]
    assert table.iloc[0]["mae persistence"] == "-" and table.iloc[0]["model interval widening kWh"] == "-"
    assert float(table.iloc[1][f"mae {week.winner}"]) > 0
    assert not any(text in markdown_table(table) for text in ("nan", "None"))
