"""Conformal calibration of the model's P10..P90 interval (conformalized quantile regression).

Quantile models fitted on a window cover less out of sample than in it: on the OpenSTEF sample the
raw P10..P90 held about half of the actuals, not 80 %. Each interval the model gave for a day already
past is scored by how far the actual fell outside it (negative inside); the next forecast's interval
is widened on both sides by the score that COVERAGE of those scores stay under. Only widened, never
narrowed, so P10 <= P50 <= P90 holds. The scores come only from days before the forecast day: in a
backtest from the origins before it, for the live forecast from the whole backtest.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from metrify_assets.forecasting.baselines import LOWER, UPPER
from metrify_assets.forecasting.model import METHOD

COVERAGE = UPPER - LOWER
MIN_SCORES = 96  # a day of quarter-hours: fewer, and the interval stays as the model gave it


def scores(frame: pd.DataFrame) -> np.ndarray:
    """How far each actual fell outside the model's interval before widening (rows of `frame` with an
    actual; `margin` is what was added to each side, 0 where the column is absent)."""
    rows = frame[(frame["method"] == METHOD) & frame["actual"].notna() & frame["p50"].notna()]
    widened = rows["margin"].to_numpy(dtype="float64") if "margin" in rows else 0.0
    actual = rows["actual"].to_numpy(dtype="float64")
    low = rows["p10"].to_numpy(dtype="float64") + widened
    high = rows["p90"].to_numpy(dtype="float64") - widened
    return np.maximum(low - actual, actual - high)


def margin(past: np.ndarray) -> float:
    """The widening that makes the interval hold COVERAGE of the `past` scores (0 with too few)."""
    if len(past) < MIN_SCORES:
        return 0.0
    level = min(1.0, COVERAGE * (1 + 1 / len(past)))
    return max(0.0, float(np.quantile(past, level, method="higher")))


def widen(frame: pd.DataFrame, by: float) -> pd.DataFrame:
    """`frame` with the model's P10 lowered and P90 raised by `by`, and a `margin` column saying so
    (0 for the baselines)."""
    is_model = (frame["method"] == METHOD).to_numpy()
    added = np.where(is_model, by, 0.0)
    return frame.assign(p10=frame["p10"] - added, p90=frame["p90"] + added, margin=added)
