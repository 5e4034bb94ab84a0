"""The forecast methods' names, apart from how each forecasts: the API's `method` filter reads them
without importing the model and its features (holidays, threadpoolctl)."""

from __future__ import annotations

MODEL = "model"
BASELINES = ("seasonal_naive", "weekday_mean", "persistence")
METHODS = (MODEL, *BASELINES)
