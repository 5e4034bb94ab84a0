"""The expected-consumption model: what each meter should have used in an interval, learned by gradient
boosting from the local clock, weekday, holidays, temperature, segment and the meter's own level.

The target is the interval energy relative to the meter's level (its mean absolute interval energy
over the training window), so a plant and a flat weigh the same and one model serves every meter;
the expectation is the prediction times the level. The level is stored with the model, so scoring
never re-reads the training window; a meter the model has no level for is left unscored.

Training holds out the window's last days: the model is fitted on the days before them, and the tail
gives honest metrics (MAE, R^2) and calibrates the residual scales that turn residuals into scores
(`scoring.py`): per meter and local hour, the robust spread of the relative residual, and one factor for how much
more a day's median standardised residual varies than independent readings would make it (the
model's day-level error). With a single day of data there is no tail, and the calibration is in-sample.

Saved with joblib (pickle) into the lake, which is trusted: only the pipeline writes `models/`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from metrify_assets.contracts import UNREGISTERED
from metrify_assets.storage.model_files import model_bytes

MODEL_KIND = "gbm-expected-v1"
FEATURES = ("local_hour", "weekday", "holiday", "temperature_c", "level_kwh", "segment")
HOLDOUT_DAYS = 7
MAX_TRAINING_ROWS = 1_000_000  # a sample beyond this: the weekly training's cost stays bounded
LEVEL_FLOOR_KWH = 0.01
SIGMA_FLOOR = 0.02  # relative residual spread below which a meter is treated as this noisy
DENOMINATOR_SHARE = 0.25  # residuals are relative to max(|expected|, this share of the level)
MIN_HOUR_SAMPLES = 12  # tail readings a meter-hour needs for a spread of its own
MEDIAN_EFFICIENCY = 1.2533  # std of a sample median / std of one value, for normal noise
IMPORTANCE_ROWS = 20_000
RANDOM_STATE = 0
METER_COLUMNS = ["meter_id", "level_kwh", "sigma", "centre"]


@dataclass(frozen=True)
class ExpectedModel:
    """A fitted model with everything scoring needs: per-meter level and residual spread, the day factor."""

    estimator: Any  # sklearn HistGradientBoostingRegressor
    meters: pd.DataFrame  # METER_COLUMNS
    hourly_sigmas: pd.DataFrame  # meter_id, hour (local), sigma: where the tail had enough readings
    segments: tuple[str, ...]
    country: str
    day_factor: float
    trained_from: str
    trained_to: str
    metrics: dict[str, float] = field(default_factory=dict)
    importance: dict[str, float] = field(default_factory=dict)
    version: str = ""


def levels(prepared: pd.DataFrame) -> pd.Series:
    """Each meter's mean absolute interval energy (kWh), floored: the scale its expectation is relative to."""
    level = prepared["energy_kwh"].abs().groupby(prepared["meter_id"]).mean()
    return level.clip(lower=LEVEL_FLOOR_KWH).rename("level_kwh")


def design(prepared: pd.DataFrame, level: pd.Series, segments: tuple[str, ...]) -> pd.DataFrame:
    """The model's input matrix in FEATURES order; segment as a category code (unseen: missing)."""
    codes = {name: float(i) for i, name in enumerate(segments)}
    return pd.DataFrame(
        {
            "local_hour": prepared["local_hour"].astype("float64").to_numpy(),
            "weekday": prepared["weekday"].astype("float64").to_numpy(),
            "holiday": prepared["holiday"].astype("float64").to_numpy(),
            "temperature_c": prepared["temperature_c"].astype("float64").to_numpy(),
            "level_kwh": prepared["meter_id"].map(level).astype("float64").to_numpy(),
            "segment": prepared["segment"].map(codes).astype("float64").to_numpy(),
        },
        columns=list(FEATURES),
    )


def relative_residual(actual: np.ndarray, expected: np.ndarray, level: np.ndarray) -> np.ndarray:
    """(actual - expected) relative to the expectation, floored at a share of the level so intervals
    expected near zero (night, a solar meter at noon) do not blow up."""
    return (actual - expected) / np.maximum(np.abs(expected), DENOMINATOR_SHARE * level)


def _estimator() -> Any:
    from sklearn.ensemble import HistGradientBoostingRegressor  # imported when training, not at load

    return HistGradientBoostingRegressor(
        max_iter=150,
        learning_rate=0.1,
        max_leaf_nodes=31,
        min_samples_leaf=40,
        l2_regularization=1.0,
        categorical_features=[FEATURES.index("segment")],
        early_stopping=False,
        random_state=RANDOM_STATE,
    )


def fit(
    prepared: pd.DataFrame,
    trained_from: str,
    trained_to: str,
    country: str,
    holdout_days: int = HOLDOUT_DAYS,
    max_rows: int = MAX_TRAINING_ROWS,
) -> ExpectedModel | None:
    """Fit on `prepared` readings (features.prepare) of the window; None when there are none."""
    if prepared.empty:
        return None
    level = levels(prepared)
    segments = tuple(sorted({*prepared["segment"].astype(str), UNREGISTERED}))
    days = sorted(set(prepared["local_date"]))
    tail_days = set(days[-min(holdout_days, len(days) // 2) :]) if len(days) > 1 else set()
    in_tail = prepared["local_date"].isin(tail_days).to_numpy()
    head = prepared[~in_tail] if tail_days else prepared
    tail = prepared[in_tail] if tail_days else prepared
    if len(head) > max_rows:
        head = head.sample(n=max_rows, random_state=RANDOM_STATE)
    estimator = _estimator()
    head_level = head["meter_id"].map(level).to_numpy()
    x_head = design(head, level, segments)
    # A feature with no value at all in the window (no weather landed yet) crashes the binning of
    # scikit-learn 1.9; constant, it simply teaches nothing, and missing values still route at scoring.
    x_head = x_head.fillna({c: 0.0 for c in x_head.columns if x_head[c].isna().all()})
    estimator.fit(x_head, head["energy_kwh"].to_numpy() / head_level)

    x_tail = design(tail, level, segments)
    tail_level = x_tail["level_kwh"].to_numpy()
    expected = estimator.predict(x_tail) * tail_level
    actual = tail["energy_kwh"].to_numpy()
    rel = relative_residual(actual, expected, tail_level)
    sigma, hourly = _sigmas(tail, rel, level.index)
    meters = pd.DataFrame(
        {"meter_id": level.index.astype(str), "level_kwh": level.to_numpy(), "sigma": sigma.to_numpy()}
    )
    model = ExpectedModel(
        estimator=estimator,
        meters=meters.assign(centre=0.0),
        hourly_sigmas=hourly,
        segments=segments,
        country=country,
        day_factor=1.0,
        trained_from=trained_from,
        trained_to=trained_to,
    )
    standardised = rel / sigma_of(model, tail)
    # The median reading sits below the mean the model predicts (consumption is right-skewed): the
    # day statistic is a median, so each meter's typical median is its zero.
    centre = pd.Series(standardised).groupby(tail["meter_id"].to_numpy()).median()
    meters["centre"] = meters["meter_id"].map(centre).fillna(0.0).to_numpy()
    day_factor = _day_factor(tail, standardised - tail["meter_id"].map(centre).to_numpy())
    metrics = _metrics(actual, expected, tail_level, len(head), len(tail), len(tail_days))
    metrics.update(sigma_median=round(float(sigma.median()), 4), day_factor=round(day_factor, 3))
    model = ExpectedModel(
        estimator=estimator,
        meters=meters,
        hourly_sigmas=hourly,
        segments=segments,
        country=country,
        day_factor=day_factor,
        trained_from=trained_from,
        trained_to=trained_to,
        metrics=metrics,
        importance=_importance(estimator, x_tail, actual / tail_level),
    )
    return ExpectedModel(**{**model.__dict__, "version": _version(model)})


def _sigmas(tail: pd.DataFrame, rel: np.ndarray, meters: pd.Index) -> tuple[pd.Series, pd.DataFrame]:
    """Residual spreads: per meter, and per meter and local hour where the tail has enough readings
    (a solar meter is far noisier at the shoulders of the day than at night). Spread is 1.4826 x the
    median absolute deviation, floored; a meter without tail readings gets the others' median."""
    frame = pd.DataFrame({"meter_id": tail["meter_id"].to_numpy(), "hour": _hour(tail), "rel": rel})
    per_meter = _robust_spread(frame, ["meter_id"]).reindex(meters)
    per_meter = per_meter.fillna(float(per_meter.median()) if per_meter.notna().any() else SIGMA_FLOOR)
    cells = frame.groupby(["meter_id", "hour"])["rel"].size()
    per_hour = _robust_spread(frame, ["meter_id", "hour"])[cells >= MIN_HOUR_SAMPLES]
    return per_meter.rename("sigma"), per_hour.rename("sigma").reset_index()


def _hour(prepared: pd.DataFrame) -> np.ndarray:
    return np.floor(prepared["local_hour"].to_numpy()).astype("int64")


def _robust_spread(frame: pd.DataFrame, by: list[str]) -> pd.Series:
    centre = frame.groupby(by)["rel"].transform("median")
    mad = (frame["rel"] - centre).abs().groupby([frame[c] for c in by]).median()
    return (1.4826 * mad).clip(lower=SIGMA_FLOOR)


def sigma_of(model: ExpectedModel, prepared: pd.DataFrame) -> np.ndarray:
    """Each row's residual spread: its meter and local hour's, else its meter's."""
    keys = pd.DataFrame({"meter_id": prepared["meter_id"].to_numpy(), "hour": _hour(prepared)})
    hourly = keys.merge(model.hourly_sigmas, on=["meter_id", "hour"], how="left")["sigma"]
    per_meter = keys["meter_id"].map(model.meters.set_index("meter_id")["sigma"])
    return hourly.fillna(per_meter).to_numpy(dtype="float64")


def day_statistic(meter: pd.Series, local_date: pd.Series, standardised: np.ndarray) -> pd.DataFrame:
    """Per meter-day: intervals, the median of the (centred) standardised residuals, and its z-value if
    readings were independent (median x sqrt(n) / 1.2533)."""
    frame = pd.DataFrame(
        {"meter_id": meter.to_numpy(), "local_date": local_date.to_numpy(), "std_resid": standardised}
    )
    days = frame.groupby(["meter_id", "local_date"], sort=True).agg(
        intervals=("std_resid", "size"), median=("std_resid", "median")
    )
    days["z"] = days["median"] * np.sqrt(days["intervals"]) / MEDIAN_EFFICIENCY
    return days.reset_index()


def _day_factor(tail: pd.DataFrame, standardised: np.ndarray) -> float:
    """How much wider day z-values spread than independent noise would make them (at least 1): the
    model's day-level error, pooled over every meter-day of the tail."""
    z = day_statistic(tail["meter_id"], tail["local_date"], standardised)["z"].to_numpy()
    if len(z) < 2:
        return 1.0
    return max(float(1.4826 * np.median(np.abs(z - np.median(z)))), 1.0)


def _metrics(
    actual: np.ndarray, expected: np.ndarray, level: np.ndarray, head_rows: int, tail_rows: int, days: int
) -> dict[str, float]:
    from sklearn.metrics import r2_score

    relative = r2_score(actual / level, expected / level) if len(actual) > 1 else float("nan")
    return {
        "training_rows": float(head_rows),
        "holdout_rows": float(tail_rows),
        "holdout_days": float(days),
        "mae_kwh": round(float(np.mean(np.abs(actual - expected))), 5),
        "r2": round(float(r2_score(actual, expected)), 4) if len(actual) > 1 else float("nan"),
        "r2_relative": round(float(relative), 4),
    }


def _importance(estimator: Any, x: pd.DataFrame, y: np.ndarray) -> dict[str, float]:
    """Permutation importance on (a sample of) the held-out rows: the drop in R^2 per shuffled feature."""
    from sklearn.inspection import permutation_importance

    if len(x) < 10:
        return {}
    rows = np.random.default_rng(RANDOM_STATE).permutation(len(x))[:IMPORTANCE_ROWS]
    result = permutation_importance(
        estimator, x.iloc[rows], y[rows], n_repeats=3, random_state=RANDOM_STATE, n_jobs=1
    )
    return {name: round(float(v), 4) for name, v in zip(FEATURES, result.importances_mean, strict=True)}


def expected_kwh(model: ExpectedModel, prepared: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(known, expected): which rows' meters the model has a level for, and their expectation (kWh)."""
    level = model.meters.set_index("meter_id")["level_kwh"]
    known = prepared["meter_id"].isin(level.index).to_numpy()
    if not known.any():
        return known, np.empty(0)
    rows = prepared[known]
    return known, model.estimator.predict(design(rows, level, model.segments)) * rows["meter_id"].map(
        level
    ).to_numpy()


def _version(model: ExpectedModel) -> str:
    """`<kind>@<last training day>-<hash>` of the fitted trees, levels and calibration: same data,
    same version."""
    digest = hashlib.sha256(model_bytes(model))
    return f"{MODEL_KIND}@{model.trained_to}-{digest.hexdigest()[:10]}"
