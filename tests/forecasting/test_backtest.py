"""Rolling-origin backtests: the metrics against hand computation, the winner rule, and the model
beating both baselines where the load follows the temperature (which only the model sees)."""

from __future__ import annotations

from datetime import date, timedelta
from io import StringIO

import numpy as np
import pandas as pd
from rich.console import Console

from metrify_assets.cli.forecast import backtest_all
from metrify_assets.forecasting import backtest as bt
from tests.forecasting.synthetic import synthetic


def frame(method: str, actual: list[float], p50: list[float], width: float = 1.0) -> pd.DataFrame:
    stamps = pd.date_range("2026-01-01", periods=len(actual), freq="15min", tz="UTC")
    p = np.asarray(p50)
    return pd.DataFrame(
        {
            "reading_start": stamps,
            "local_date": date(2026, 1, 1),
            "horizon_hour": np.arange(len(actual)) // 4,
            "method": method,
            "p10": p - width,
            "p50": p,
            "p90": p + width,
            "actual": actual,
        }
    )


def test_metrics_by_hand() -> None:
    actual = [10.0, 20.0, 0.0, 40.0]
    scored = bt.evaluate(
        pd.concat(
            [
                frame("model", actual, [11.0, 18.0, 0.0, 40.0]),
                frame("seasonal_naive", actual, [5.0] * 4, 10.0),
            ]
        )
    ).set_index("method")
    model = scored.loc["model"]
    assert model["n"] == 4 and np.isclose(model["mae"], (1 + 2 + 0 + 0) / 4)
    # MAPE skips the zero actual (below 5 % of the mean |actual|); sMAPE counts 0/0 as no error
    assert np.isclose(model["mape"], 100 * (0.1 + 0.1 + 0.0) / 3)
    assert np.isclose(model["smape"], 100 * (2 / 21 + 4 / 38 + 0 + 0) / 4)
    assert np.isclose(model["coverage"], 0.75)  # 18 +/- 1 misses 20
    assert np.isclose(scored.loc["seasonal_naive", "coverage"], 0.5)  # 5 +/- 10 holds 0 and 10


def test_a_point_forecast_is_no_miss_of_an_interval() -> None:
    """A baseline without an interval (P10/P90 null) is scored on its P50; its coverage is unknown,
    not 0, and a partly banded day counts only the banded intervals."""
    actual = [10.0, 20.0, 30.0, 40.0]
    point = frame("persistence", actual, [11.0, 20.0, 29.0, 40.0]).assign(p10=np.nan, p90=np.nan)
    half = frame("weekday_mean", actual, [10.0, 20.0, 35.0, 35.0], 1.0)
    half.loc[:1, ["p10", "p90"]] = np.nan  # banded: 30 +/- ... 35 +/- 1 misses 30 and 40
    scored = bt.evaluate(pd.concat([point, half])).set_index("method")
    assert scored.loc["persistence", "n"] == 4 and np.isclose(scored.loc["persistence", "mae"], 0.5)
    assert np.isnan(scored.loc["persistence", "coverage"])
    assert np.isclose(scored.loc["weekday_mean", "coverage"], 0.0)


def test_methods_are_compared_on_the_same_intervals() -> None:
    actual = [10.0, 20.0, 30.0, 40.0]
    partial = frame("seasonal_naive", actual, [10.0, np.nan, 30.0, 40.0])
    scored = bt.evaluate(pd.concat([frame("model", actual, [12.0] * 4), partial])).set_index("method")
    assert (scored["n"] == 3).all()


def test_the_model_is_kept_only_where_it_beats_every_baseline() -> None:
    def summary(model: float, naive: float, mean: float, persistence: float = 9.0) -> pd.DataFrame:
        methods = ["model", "seasonal_naive", "weekday_mean", "persistence"]
        return pd.DataFrame({"method": methods, "mae": [model, naive, mean, persistence]})

    assert bt.winner(summary(1.0, 2.0, 3.0)) == "model"
    assert bt.winner(summary(2.5, 2.0, 3.0)) == "seasonal_naive"
    assert bt.winner(summary(2.5, 3.0, 2.0)) == "weekday_mean"
    assert bt.winner(summary(2.0, 2.0, 3.0)) == "seasonal_naive"  # a tie is no win
    assert bt.winner(summary(1.0, 2.0, 3.0, 0.5)) == "persistence"
    assert bt.ranking(summary(2.5, 3.0, 2.0)) == ["weekday_mean", "seasonal_naive", "persistence", "model"]
    no_model = pd.DataFrame({"method": ["seasonal_naive", "weekday_mean"], "mae": [3.0, 2.0]})
    assert bt.ranking(no_model) == ["weekday_mean", "seasonal_naive", "persistence", "model"]
    assert bt.winner(pd.DataFrame(columns=["method", "mae"])) == "weekday_mean"


def test_where_weather_drives_the_load_the_model_beats_both_baselines() -> None:
    series = synthetic(days=26, heating_kwh_per_degree=1.5)
    origins = [date(2026, 1, 5) + timedelta(days=d) for d in (22, 24)]
    result = bt.backtest(series, origins, window_days=21)
    assert set(result["method"]) == set(bt.METHODS)
    assert len(result) == len(bt.METHODS) * 2 * 96
    summary = bt.evaluate(result).set_index("method")
    assert summary["mae"].notna().all() and (summary["n"] == 2 * 96).all()
    assert summary.loc["model", "mae"] < summary.drop(index="model")["mae"].min()
    assert bt.winner(summary.reset_index()) == "model"
    hourly = bt.evaluate(result, by_hour=True)
    assert sorted(hourly["horizon_hour"].unique()) == list(range(24))
    assert hourly["coverage"].between(0, 1).all()


def test_a_backtest_refitted_daily_equals_forecasting_each_origin_alone() -> None:
    series = synthetic(days=24)
    origins = [date(2026, 1, 5) + timedelta(days=d) for d in (20, 21, 22)]
    result = bt.backtest(series, origins, window_days=14, refit_days=1)
    alone = pd.concat([bt.forecast_day(series, day, window_days=14).forecasts for day in origins])
    # the same forecasts, the model's interval widened by the conformal margin of the origins before
    raw = result.assign(p10=result["p10"] + result["margin"], p90=result["p90"] - result["margin"])
    pd.testing.assert_frame_equal(raw.drop(columns=["actual", "margin"]), alone.reset_index(drop=True))
    weekly = bt.backtest(series, origins, window_days=14, refit_days=7)
    baselines_only = weekly["method"] != bt.MODEL
    pd.testing.assert_frame_equal(weekly[baselines_only], result[baselines_only])
    # the first origin's model is the same; later origins use it instead of a refit
    first = (weekly["method"] == bt.MODEL) & (weekly["local_date"] == origins[0])
    later = (weekly["method"] == bt.MODEL) & (weekly["local_date"] != origins[0])
    pd.testing.assert_frame_equal(weekly[first], result[first])
    assert not weekly.loc[later, "p50"].equals(result.loc[later, "p50"])


def test_a_series_too_young_to_compare_methods_wins_nothing() -> None:
    """Two days of history score only persistence: `metrify forecast backtest` counts it as chosen by
    default, not as a persistence win."""
    young, old = synthetic(days=3), synthetic(days=21)
    console = Console(file=StringIO())
    first, last = date(2026, 1, 7), date(2026, 1, 7)
    frame, wins, by_default = backtest_all({"young": young}, first, last, 7, 7, console)
    assert len(frame) and not bt.compared(bt.evaluate(frame))
    assert (sum(wins.values()), by_default) == (0, 1)
    _, wins, by_default = backtest_all({"young": young, "old": old}, first, date(2026, 1, 20), 7, 7, console)
    assert (sum(wins.values()), by_default) == (1, 1)
