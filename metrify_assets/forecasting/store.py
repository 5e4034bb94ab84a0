"""Forecast models in the lake: `models/load_forecast/<forecast day>/<region>/<segment>/` holds the
model (joblib, when one was fitted) and `model.json` (training window, features, the backtest's
metrics per method, which won). Each method's rows carry a version naming that method's kind (the
model's `hgb-quantile-v1`, a baseline's e.g. `persistence-v1`), the day and a digest of the
description: a baseline's rows never claim a model that was not fitted.
The lake is trusted: only the pipeline writes `models/`, and loading the joblib file unpickles it.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from metrify_assets.forecasting import baselines
from metrify_assets.forecasting import model as quantile_model
from metrify_assets.forecasting.features import FEATURES
from metrify_assets.forecasting.run import SeriesForecast
from metrify_assets.resources.lake import Lake
from metrify_assets.storage.model_files import model_bytes

MODEL_PREFIX = "models/load_forecast"


def prefix(result: SeriesForecast, region: str, segment: str) -> str:
    return f"{MODEL_PREFIX}/{result.day.isoformat()}/{quote(region, safe='')}/{quote(segment, safe='')}"


def kind(method: str) -> str:
    """What made a method's rows: the model's kind or the baseline's."""
    return quantile_model.MODEL_KIND if method == quantile_model.METHOD else baselines.KINDS[method]


def describe(result: SeriesForecast, region: str, segment: str, window_days: int) -> dict[str, Any]:
    """What `model.json` says. `versions`: per method that forecast the day or was backtested, its
    kind, the day and a digest of the rest; `version`: the chosen method's."""
    info: dict[str, Any] = {
        "kind": quantile_model.MODEL_KIND,
        "region": region,
        "segment": segment,
        "forecast_day": result.day.isoformat(),
        "trained_from": (result.day - timedelta(days=window_days)).isoformat(),
        "trained_to": (result.day - timedelta(days=1)).isoformat(),
        "training_rows": result.forecast.training_rows,
        "timezone": result.series.timezone,
        "holiday_country": result.series.country,
        "features": list(FEATURES),
        "quantiles": list(quantile_model.QUANTILES),
        "backtest_origins": result.origins,
        "backtest": result.summary.to_dict(orient="records"),
        "winner": result.winner,
        "interval_margin_kwh": result.margin_kwh,
        "model_fitted": result.forecast.model is not None,
    }
    digest = hashlib.sha256(json.dumps(info, sort_keys=True, default=str).encode()).hexdigest()[:10]
    methods = {*result.forecast.forecasts["method"], *result.summary.get("method", ()), result.winner}
    info["versions"] = {m: f"{kind(m)}@{result.day.isoformat()}-{digest}" for m in sorted(methods)}
    info["version"] = info["versions"][result.winner]
    return info


def save(lake: Lake, result: SeriesForecast, region: str, segment: str, window_days: int) -> dict[str, Any]:
    """Write the model (if any) and its description; returns the description with its `uri`."""
    info = describe(result, region, segment, window_days)
    where = prefix(result, region, segment)
    if result.forecast.model is not None:
        info["model_key"] = f"{where}/model.joblib"
        lake.put(info["model_key"], model_bytes(result.forecast.model))
    body = json.dumps(info, indent=2, default=str).encode()
    info["uri"] = lake.put(f"{where}/model.json", body, content_type="application/json")
    return info
