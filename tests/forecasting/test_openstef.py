"""A rolling backtest on real data: the OpenSTEF sample (tests/fixtures/openstef_307_test.csv, a Dutch
distribution-grid location's net load, MPL-2.0). Every method's metrics are finite and better than
forecasting nothing; the winner follows the rule; the figures land in the test report."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import numpy as np

from metrify_assets.forecasting import backtest as bt
from metrify_assets.forecasting.openstef import openstef_series

SAMPLE = Path(__file__).parents[1] / "fixtures" / "openstef_307_test.csv"
ORIGINS = [date(2020, 11, 23) + timedelta(days=d) for d in range(7)]  # the last complete local week


def test_backtest_on_the_openstef_sample(record_property: Callable[[str, object], None]) -> None:
    series = openstef_series(SAMPLE)
    assert (series.load < 0).any()  # net load: feed-in is negative
    result = bt.backtest(series, ORIGINS, window_days=21)
    summary = bt.evaluate(result).set_index("method")
    assert list(summary.index) == sorted(bt.METHODS)
    assert (summary["n"] == 7 * 96).all()
    assert np.isfinite(summary[["mae", "mape", "smape", "coverage"]].to_numpy()).all()
    # sensible: each method errs less than a forecast of zero would, and its interval holds something
    scored = bt.scorable(result)
    assert (summary["mae"] < scored["actual"].abs().mean()).all()
    assert summary["smape"].between(0, 200).all() and summary["coverage"].between(0.2, 1.0).all()
    won = bt.winner(summary.reset_index())
    others = summary.drop(index=won)["mae"]
    assert won == "model" or summary.loc[won, "mae"] <= others.min()
    for method, row in summary.iterrows():
        record_property(f"{method}_mae_kwh", round(float(row["mae"]), 1))
    record_property("winner", won)
    hourly = bt.evaluate(result, by_hour=True)
    assert set(hourly["horizon_hour"]) == set(range(24))
