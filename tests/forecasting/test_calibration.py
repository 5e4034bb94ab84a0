"""Conformal widening of the model's interval: the margin by hand, only past days feed it, and on a
series the model under-covers, the widened interval covers more out of sample."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd

from metrify_assets.forecasting import backtest as bt
from metrify_assets.forecasting import calibration
from tests.forecasting.synthetic import synthetic


def test_the_margin_is_the_score_that_coverage_of_the_past_stays_under() -> None:
    past = np.arange(200, dtype="float64") - 100.0  # -100 .. 99
    level = 0.8 * (1 + 1 / 200)
    assert calibration.margin(past) == np.quantile(past, level, method="higher")
    assert calibration.margin(past[:50]) == 0.0  # fewer than a day of scores
    assert calibration.margin(np.full(200, -5.0)) == 0.0  # every actual well inside: never narrowed
    frame = pd.DataFrame(
        {"method": ["model", "model", "weekday_mean"], "p10": [1.0, 1.0, 1.0], "p50": [2.0, 2.0, 2.0],
         "p90": [3.0, 3.0, 3.0], "actual": [5.0, 1.5, 9.0]}
    )  # fmt: skip
    assert list(calibration.scores(frame)) == [2.0, -0.5]  # the baseline's row is not scored
    widened = calibration.widen(frame, 2.0)
    assert list(widened["p10"]) == [-1.0, -1.0, 1.0] and list(widened["margin"]) == [2.0, 2.0, 0.0]
    assert list(calibration.scores(widened)) == [2.0, -0.5]  # scored on the interval as the model gave it


def test_each_origin_is_widened_only_by_the_origins_before_it() -> None:
    series = synthetic(days=30, noise=0.15)
    origins = [date(2026, 1, 5) + timedelta(days=d) for d in range(24, 29)]
    result = bt.backtest(series, origins, window_days=21)
    model = result[result["method"] == bt.MODEL]
    margins = model.groupby("local_date")["margin"].first()
    assert margins.iloc[0] == 0.0  # nothing before the first origin
    for k, day in enumerate(origins[1:], start=1):
        before = model[model["local_date"] < day]
        assert margins[day] == calibration.margin(calibration.scores(before)), k
    inside = (model["actual"] >= model["p10"]) & (model["actual"] <= model["p90"])
    raw_inside = (model["actual"] >= model["p10"] + model["margin"]) & (
        model["actual"] <= model["p90"] - model["margin"]
    )
    assert margins.iloc[1:].gt(0).any() and inside.mean() > raw_inside.mean()
