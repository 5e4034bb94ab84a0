"""The forecasting model: gradient boosting with quantile loss, one estimator per quantile (P10, P50,
P90), fitted per series on the rows of its training window (features.build).

Quantile models give the interval directly; the three predictions are sorted per row so the interval
never crosses. Saved with joblib (pickle) into the lake, which is trusted: only the pipeline writes
`models/`.

Fitting and prediction run on one OpenMP thread: a series is small (a few thousand rows), and
OpenMP's threads spin-waiting for each other on a busy 2-core host made a fit 5-10x slower; series
run side by side instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from metrify_assets.forecasting import methods
from metrify_assets.forecasting.features import FEATURES

MODEL_KIND = "hgb-quantile-v1"
METHOD = methods.MODEL  # its name among the forecast methods
QUANTILES = (0.1, 0.5, 0.9)
MIN_TRAINING_ROWS = 96 * 7  # a week of rows with last week's value: less, and the baselines forecast
RANDOM_STATE = 0


@dataclass(frozen=True)
class QuantileModel:
    """One fitted estimator per quantile, in QUANTILES order."""

    estimators: tuple[Any, ...]

    def predict(self, rows: pd.DataFrame) -> pd.DataFrame:
        """p10, p50, p90 for each row of `rows` (features.build), never crossing."""
        x = rows[list(FEATURES)].to_numpy(dtype="float64")
        with threadpool_limits(limits=1, user_api="openmp"):
            predicted = np.sort(np.column_stack([e.predict(x) for e in self.estimators]), axis=1)
        return pd.DataFrame(predicted, columns=["p10", "p50", "p90"], index=rows.index)


def _estimator(quantile: float) -> Any:
    from sklearn.ensemble import HistGradientBoostingRegressor  # imported when training, not at load

    return HistGradientBoostingRegressor(
        loss="quantile",
        quantile=quantile,
        max_iter=50,
        max_bins=63,
        learning_rate=0.15,
        max_leaf_nodes=15,
        min_samples_leaf=20,
        early_stopping=False,
        random_state=RANDOM_STATE,
    )


def trainable(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows a model learns from: an actual and last week's value."""
    return rows[rows["actual"].notna() & rows["lag_7d"].notna()]


def fit(rows: pd.DataFrame) -> QuantileModel | None:
    """Fit on the training window's rows; None when too few are trainable."""
    train = trainable(rows)
    if len(train) < MIN_TRAINING_ROWS:
        return None
    x = train[list(FEATURES)].to_numpy(dtype="float64")
    y = train["actual"].to_numpy(dtype="float64")
    with threadpool_limits(limits=1, user_api="openmp"):
        return QuantileModel(tuple(_estimator(q).fit(x, y) for q in QUANTILES))
