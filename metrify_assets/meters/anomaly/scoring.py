"""Scoring a run's readings with the expected-consumption model and the baseline, side by side.

Per reading, the score is the relative residual over the meter's residual spread; only upward
deviations are anomalies, as with the baseline (drops to zero are the record rules' business).
This is `is_anomaly` in ops.anomaly_scores, so the anomaly rate downstream still counts readings.

Per meter-day, the score is the day's median standardised residual over its noise (shrunk by the
square root of the day's intervals, widened by the model's day factor), in either direction. A meter reading 30 % high or low all day moves every residual a little; one reading
cannot see that, the day's median does. The median, unlike the day's sum, ignores a spike or a
zero run, which the per-reading score and the record rules already report.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from metrify_assets.meters.anomaly.baseline import score_baseline
from metrify_assets.meters.anomaly.model import (
    ExpectedModel,
    day_statistic,
    expected_kwh,
    relative_residual,
    sigma_of,
)

READING_THRESHOLD = 8.0
DAY_THRESHOLD = 5.0
SCORE_COLUMNS = [
    "meter_id",
    "reading_start",
    "score",
    "is_anomaly",
    "model_version",
    "expected_kwh",
    "baseline_score",
    "baseline_is_anomaly",
]
DAY_COLUMNS = [
    "meter_id",
    "local_date",
    "intervals",
    "actual_kwh",
    "expected_kwh",
    "ratio",
    "score",
    "is_anomaly",
    "baseline_anomalies",
    "model_version",
]


@dataclass(frozen=True)
class RunScores:
    readings: pd.DataFrame  # SCORE_COLUMNS
    days: pd.DataFrame  # DAY_COLUMNS
    unscored: int  # readings of meters the model does not know


def empty_scores() -> RunScores:
    dtypes = {"score": "float64", "expected_kwh": "float64", "baseline_score": "float64"}
    readings = pd.DataFrame({c: pd.Series(dtype=dtypes.get(c, object)) for c in SCORE_COLUMNS})
    days = pd.DataFrame({c: pd.Series(dtype=object) for c in DAY_COLUMNS})
    return RunScores(readings, days, 0)


def score_run(
    prepared: pd.DataFrame,
    model: ExpectedModel,
    baseline: pd.DataFrame,
    reading_threshold: float = READING_THRESHOLD,
    day_threshold: float = DAY_THRESHOLD,
    baseline_threshold: float | None = None,
) -> RunScores:
    """Score `prepared` readings (features.prepare) with both models; readings of meters the model
    has not seen are left unscored (counted), and the next training takes them in."""
    known, expected = expected_kwh(model, prepared)
    if not known.any():
        return RunScores(empty_scores().readings, empty_scores().days, len(prepared))
    rows = prepared[known].reset_index(drop=True)
    meters = model.meters.set_index("meter_id")
    level = rows["meter_id"].map(meters["level_kwh"]).to_numpy()
    actual = rows["energy_kwh"].to_numpy()
    score = relative_residual(actual, expected, level) / sigma_of(model, rows)
    readings = pd.DataFrame(
        {
            "meter_id": rows["meter_id"].astype(str),
            "reading_start": rows["reading_start"],
            "score": np.round(score, 4),
            "is_anomaly": score > reading_threshold,
            "model_version": model.version,
            "expected_kwh": np.round(expected, 5),
        }
    )
    kwargs = {} if baseline_threshold is None else {"threshold": baseline_threshold}
    base, _ = score_baseline(rows[["meter_id", "reading_start", "energy_kwh"]], baseline, "", **kwargs)
    base = base.rename(columns={"score": "baseline_score", "is_anomaly": "baseline_is_anomaly"})
    readings = readings.merge(
        base[["meter_id", "reading_start", "baseline_score", "baseline_is_anomaly"]],
        on=["meter_id", "reading_start"],
        how="left",
    )
    readings["baseline_is_anomaly"] = readings["baseline_is_anomaly"].astype("boolean")
    centred = score - rows["meter_id"].map(meters["centre"]).to_numpy()
    days = _days(rows, actual, expected, centred, readings, model, day_threshold)
    return RunScores(readings[SCORE_COLUMNS], days, int((~known).sum()))


def _days(
    rows: pd.DataFrame,
    actual: np.ndarray,
    expected: np.ndarray,
    standardised: np.ndarray,
    readings: pd.DataFrame,
    model: ExpectedModel,
    threshold: float,
) -> pd.DataFrame:
    days = day_statistic(rows["meter_id"], rows["local_date"], standardised)
    sums = (
        pd.DataFrame(
            {
                "meter_id": rows["meter_id"].to_numpy(),
                "local_date": rows["local_date"].to_numpy(),
                "actual_kwh": actual,
                "expected_kwh": expected,
                "baseline_anomalies": readings["baseline_is_anomaly"].fillna(False).astype(int).to_numpy(),
            }
        )
        .groupby(["meter_id", "local_date"], sort=True)
        .sum()
        .reset_index()
    )
    days = days.merge(sums, on=["meter_id", "local_date"])
    score = days["z"] / model.day_factor
    ratio = days["actual_kwh"] / days["expected_kwh"].where(days["expected_kwh"].abs() > 1e-9)
    return pd.DataFrame(
        {
            "meter_id": days["meter_id"].astype(str),
            "local_date": days["local_date"],
            "intervals": days["intervals"].astype("int64"),
            "actual_kwh": days["actual_kwh"].round(4),
            "expected_kwh": days["expected_kwh"].round(4),
            "ratio": ratio.round(4),
            "score": score.round(4),
            "is_anomaly": score.abs() > threshold,
            "baseline_anomalies": days["baseline_anomalies"].astype("int64"),
            "model_version": model.version,
        }
    )[DAY_COLUMNS]
