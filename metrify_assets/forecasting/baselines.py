"""The baselines every forecast is measured against: seasonal naive (the same quarter-hour last
week), the mean of the last 4 same weekdays at that quarter-hour, and persistence (the same
quarter-hour yesterday: the only one a series younger than a week has). Each is a feature column
(features.build), so they see exactly what the model sees.

Their intervals are empirical: the P10 and P90 of the baseline's own errors over the training
window, per horizon hour. A baseline's forecast of a past day used only the days before it, so
those errors are out of sample. Where the window holds none (persistence on a series' second day:
its first day had no yesterday), the baseline is a point forecast, P10 and P90 null: a zero-width
interval would claim a certainty no error supports, and every actual off the P50 would count as a
miss of the interval.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from metrify_assets.forecasting import methods

# Each baseline (methods.BASELINES) and the feature column it forecasts with.
BASELINES = dict(zip(methods.BASELINES, ("lag_7d", "mean_4w", "lag_1d"), strict=True))
# The version each baseline's rows carry (model_version): its name and the revision of the rule above
# (P50 from the feature column, P10/P90 from its own errors); bump on a change of either.
KINDS = {name: f"{name}-v1" for name in BASELINES}
LOWER, UPPER = 0.1, 0.9


def error_quantiles(train: pd.DataFrame, column: str) -> pd.DataFrame:
    """lo, hi: the P10 and P90 of actual - baseline per horizon hour (all hours pooled where an hour
    has none); empty when the window has no error at all."""
    errors = (train["actual"] - train[column]).dropna()
    if errors.empty:
        return pd.DataFrame({"lo": pd.Series(dtype="float64"), "hi": pd.Series(dtype="float64")})
    hours = train.loc[errors.index, "horizon_hour"]
    by_hour = errors.groupby(hours).quantile(np.array([LOWER, UPPER])).unstack()
    by_hour.columns = ["lo", "hi"]
    pooled = errors.quantile([LOWER, UPPER]).to_numpy()
    full = by_hour.reindex(range(25))
    return full.fillna({"lo": pooled[0], "hi": pooled[1]})


def forecast(rows: pd.DataFrame, train: pd.DataFrame, name: str) -> pd.DataFrame:
    """p10, p50, p90 of baseline `name` for `rows` (NaN where the baseline has no value; p10 and p90
    NaN throughout when `train` holds no error of it: a point forecast)."""
    column = BASELINES[name]
    p50 = rows[column].to_numpy(dtype="float64")
    spread = error_quantiles(train, column)
    if spread.empty:
        lo = hi = np.full(len(rows), np.nan)
    else:
        picked = spread.reindex(rows["horizon_hour"].to_numpy())
        lo, hi = picked["lo"].to_numpy(), picked["hi"].to_numpy()
    return pd.DataFrame(
        {"p10": p50 + np.minimum(lo, 0.0), "p50": p50, "p90": p50 + np.maximum(hi, 0.0)}, index=rows.index
    )
