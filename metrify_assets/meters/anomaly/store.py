"""Both anomaly models in the lake: `models/anomaly/<version>/` holds the expected-consumption model
(joblib), the baseline table (Parquet) and `model.json` (window, features, metrics); `current.json`
names the version that scores. The lake is trusted: only the pipeline writes `models/`, and loading
the joblib file unpickles it.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any

import pandas as pd

from metrify_assets.meters.anomaly import model as expected_model
from metrify_assets.meters.anomaly.baseline import BASELINE_KIND
from metrify_assets.resources.lake import Lake
from metrify_assets.storage.model_files import load_model, model_bytes
from metrify_assets.storage.parquet import to_parquet_bytes

MODEL_PREFIX = "models/anomaly"
CURRENT_KEY = f"{MODEL_PREFIX}/current.json"
FORMAT = 2  # current.json of format 1 (the baseline alone) is not loaded: the next scoring trains


@dataclass(frozen=True)
class StoredModels:
    """The expected-consumption model and the baseline trained on the same window."""

    model: expected_model.ExpectedModel
    baseline: pd.DataFrame
    baseline_version: str

    @property
    def version(self) -> str:
        return self.model.version

    @property
    def prefix(self) -> str:
        return f"{MODEL_PREFIX}/{self.version}"

    def describe(self) -> dict[str, Any]:
        """What `model.json` and `current.json` say about the models."""
        return {
            "format": FORMAT,
            "version": self.version,
            "kind": expected_model.MODEL_KIND,
            "trained_from": self.model.trained_from,
            "trained_to": self.model.trained_to,
            "features": list(expected_model.FEATURES),
            "holiday_country": self.model.country,
            "meters": len(self.model.meters),
            "metrics": self.model.metrics,
            "feature_importance": self.model.importance,
            "baseline": {"kind": BASELINE_KIND, "version": self.baseline_version},
            "model_key": f"{self.prefix}/model.joblib",
            "baseline_key": f"{self.prefix}/baseline.parquet",
        }


def save(lake: Lake, models: StoredModels) -> str:
    """Write both models and their description, then point `current.json` at them; returns the
    description's URI."""
    info = models.describe()
    lake.put(info["model_key"], model_bytes(models.model))
    lake.put(
        info["baseline_key"], to_parquet_bytes(models.baseline), content_type="application/vnd.apache.parquet"
    )
    body = json.dumps(info, indent=2, default=str).encode()
    uri = lake.put(f"{models.prefix}/model.json", body, content_type="application/json")
    lake.put(CURRENT_KEY, body, content_type="application/json")
    return uri


def load_current(lake: Lake) -> StoredModels | None:
    """The models the last training made current; None before the first training (or when the
    current one predates the expected-consumption model)."""
    if not lake.exists(CURRENT_KEY):
        return None
    pointer = json.loads(lake.get(CURRENT_KEY))
    if pointer.get("format") != FORMAT:
        return None
    return StoredModels(
        model=load_model(lake.get(pointer["model_key"]), expected_model.ExpectedModel),
        baseline=pd.read_parquet(io.BytesIO(lake.get(pointer["baseline_key"]))),
        baseline_version=pointer["baseline"]["version"],
    )
