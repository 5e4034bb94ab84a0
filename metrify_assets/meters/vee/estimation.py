"""Estimation and editing: from the validated grid to the billing-grade series.

Per interval the catalogue's severities decide: a `reject` fails it, an `estimate` (or a gap) asks
for an estimate, a `flag` keeps it. A reviewer's approval keeps the value as an edit; a reviewer's
rejection estimates the interval as an edit by that reviewer. Estimates, per run of consecutive
intervals without a valid value between two valid anchors (time order, per meter):

- linear interpolation between the anchors when the run is at most `max_interpolation_minutes` long;
- like-day averaging for longer runs: the mean of the same local time on the same weekday over the
  last `like_day_weeks` weeks, from days that were neither estimated nor had an outage;
- flat fill (the one anchor's value) when only one side is valid; linear interpolation for a long
  run with no like-day history;
- register scaling: when both anchors carry `register_kwh`, the run's estimates are scaled so they sum
  to the register's movement across the run (import energy; runs with export estimates are left).
  Not when that movement is no plausible consumption for the run: the register went backwards, or a
  scaled estimate would exceed its day's plausible interval energy (`catalogue.plausible_interval_kwh`:
  a spike of the day, or above the record rules' maximum). That is a register reset, rollover or meter
  exchange: the run keeps its unscaled estimates and records `register_reset` among its reasons.

A day whose share of intervals to estimate exceeds `max_missing_share` is not estimated at all:
its empty intervals stay `missing` (nothing read) or `failed` (read but rejected).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from metrify_assets.meters.vee.catalogue import CATALOGUE, VeeConfig, plausible_interval_kwh
from metrify_assets.meters.vee.grid import day_keys

SERIES_COLUMNS = [
    "meter_id",
    "reading_start",
    "local_date",
    "interval_minutes",
    "energy_kwh",
    "direction",
    "original_kwh",
    "status",
    "method",
    "reasons",
    "batch_id",
    "edited_by",
]
LIKE_DAY_COLUMNS = ["meter_id", "local_date", "slot", "value"]  # the profile of a target meter-day


def severity_mask(masks: pd.DataFrame, config: VeeConfig, severity: str) -> np.ndarray:
    codes = [c for c in masks.columns if config.severity(c) == severity]
    return masks[codes].any(axis=1).to_numpy() if codes else np.zeros(len(masks), dtype=bool)


def _reasons(masks: pd.DataFrame) -> np.ndarray:
    joined = np.full(len(masks), "", dtype=object)
    for code in CATALOGUE:
        if code in masks.columns:
            joined = joined + np.where(masks[code].to_numpy(), code + ",", "")
    return np.array([r.rstrip(",") for r in joined], dtype=object)


def estimate(
    grid: pd.DataFrame, masks: pd.DataFrame, like_day: pd.DataFrame, config: VeeConfig
) -> tuple[pd.DataFrame, pd.Series, pd.DataFrame]:
    """(series in SERIES_COLUMNS aligned to `grid`, estimation_skipped per meter-day key "meter|day",
    `masks` with `register_reset` also on the runs whose register movement was not plausible)."""
    cfg = config
    n = len(grid)
    value = grid["value"].to_numpy(dtype="float64", na_value=np.nan)
    has_value = ~np.isnan(value)
    due = grid["due"].to_numpy(dtype=bool)
    review = grid["review_status"].to_numpy(dtype=object)
    approved = (review == "approved") & has_value
    rejected_by_review = (
        masks["review_rejected"].to_numpy() if "review_rejected" in masks else np.zeros(n, bool)
    )
    failed = severity_mask(masks, cfg, "reject") & ~approved
    wanted = (severity_mask(masks, cfg, "estimate") | ~has_value) & ~approved & ~failed & due
    valid = has_value & ~wanted & ~failed

    day_key = day_keys(grid)
    share = pd.Series(wanted, dtype="float64").groupby(day_key).sum() / pd.Series(
        due, dtype="float64"
    ).groupby(day_key).sum().clip(lower=1)
    skipped_days = share > cfg.max_missing_share
    target = wanted & ~pd.Series(day_key).map(skipped_days).to_numpy(dtype=bool)

    est, method, reset = _fill(grid, value, valid, target, like_day, cfg)
    estimated = target & ~np.isnan(est)
    if reset.any():
        masks = masks.assign(register_reset=masks["register_reset"].to_numpy() | reset)

    energy = np.where(valid, value, np.where(estimated, est, np.nan))
    # What was read: the stored value, else the value of a record quarantined for the interval.
    original = np.where(has_value, value, grid["quarantined_kwh"].to_numpy(dtype="float64", na_value=np.nan))
    was_read = has_value | rejected_by_review | ~np.isnan(original)
    status = np.where(
        approved,
        "edited",
        np.where(
            valid,
            "actual",
            np.where(
                estimated,
                np.where(rejected_by_review, "edited", "estimated"),
                np.where(was_read, "failed", "missing"),
            ),
        ),
    )
    method_out = np.where(
        approved,
        "review_approved",
        np.where(valid, "actual", np.where(estimated, method, np.where(due, "none", "not_due"))),
    )
    reviewer = grid["reviewer"].to_numpy(dtype=object)
    edited_by = np.where(approved | rejected_by_review, reviewer, np.full(n, None, dtype=object))
    direction_read = grid["direction"].fillna("import").to_numpy(dtype=object)
    direction = np.where(valid | approved, direction_read, np.where(energy < 0, "export", "import"))
    series = pd.DataFrame(
        {
            "meter_id": grid["meter_id"].astype(str).to_numpy(),
            "reading_start": grid["reading_start"].to_numpy(),
            "local_date": grid["local_date"].to_numpy(),
            "interval_minutes": grid["interval_minutes"].astype("int64").to_numpy(),
            "energy_kwh": np.round(energy, 6),
            "direction": direction,
            "original_kwh": original,
            "status": status,
            "method": method_out,
            "reasons": _reasons(masks),
            "batch_id": grid["batch_id"].to_numpy(dtype=object),
            "edited_by": edited_by,
        },
        index=grid.index,
    )
    series["reading_start"] = pd.to_datetime(series["reading_start"], utc=True)
    return series, skipped_days, masks


def _fill(
    grid: pd.DataFrame,
    value: np.ndarray,
    valid: np.ndarray,
    target: np.ndarray,
    like_day: pd.DataFrame,
    cfg: VeeConfig,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Estimates and method names for the `target` rows (NaN where nothing could estimate them), and
    the rows whose run was not scaled to an implausible register movement."""
    n = len(grid)
    est = np.full(n, np.nan)
    method = np.full(n, "none", dtype=object)
    if not target.any():
        return est, method, np.zeros(n, dtype=bool)
    meter = pd.factorize(grid["meter_id"])[0]
    t = grid["reading_start"].dt.as_unit("us").astype("int64").to_numpy().astype("float64")
    idx = np.arange(n)
    # Nearest valid row on each side, within the same meter.
    left = pd.Series(np.where(valid, idx, np.nan)).ffill().to_numpy()
    right = pd.Series(np.where(valid, idx, np.nan)).bfill().to_numpy()
    li = np.nan_to_num(left, nan=0).astype("int64")
    ri = np.nan_to_num(right, nan=0).astype("int64")
    has_left = ~np.isnan(left) & (meter[li] == meter)
    has_right = ~np.isnan(right) & (meter[ri] == meter)
    step_us = grid["interval_minutes"].to_numpy(dtype="float64") * 60e6
    run_minutes = np.where(has_left & has_right, (t[ri] - t[li] - step_us) / 60e6, np.inf)
    short = run_minutes <= cfg.max_interpolation_minutes

    with np.errstate(invalid="ignore", divide="ignore"):
        linear = value[li] + (value[ri] - value[li]) * (t - t[li]) / (t[ri] - t[li])
    profile = _like_day_values(grid, like_day)

    both = has_left & has_right
    use_linear = target & both & short
    use_like = target & ~use_linear & ~np.isnan(profile)
    use_flat = target & ~use_linear & ~use_like & (has_left ^ has_right)
    use_long_linear = target & ~use_linear & ~use_like & both
    est[use_linear | use_long_linear] = linear[use_linear | use_long_linear]
    method[use_linear | use_long_linear] = "linear_interpolation"
    est[use_like] = profile[use_like]
    method[use_like] = "like_day"
    est[use_flat] = np.where(has_left, value[li], value[ri])[use_flat]
    method[use_flat] = "flat_fill"
    day_key = pd.factorize(day_keys(grid))[0]
    plausible = plausible_interval_kwh(day_key, value, valid, cfg)
    reset = _scale_to_registers(
        grid, target & ~np.isnan(est), both, li, ri, value, est, method, plausible, cfg
    )
    return est, method, reset


def _like_day_values(grid: pd.DataFrame, like_day: pd.DataFrame) -> np.ndarray:
    """The like-day profile value for each grid row (NaN where there is none)."""
    if like_day.empty:
        return np.full(len(grid), np.nan)
    keys = pd.DataFrame(
        {
            "meter_id": grid["meter_id"].astype(str).to_numpy(),
            "local_date": grid["local_date"].astype(str).to_numpy(),
            "slot": grid["slot"].astype("int64").to_numpy(),
        }
    )
    profile = like_day.astype({"meter_id": str, "local_date": str, "slot": "int64", "value": "float64"})
    # A repeated local hour (the autumn DST day) has two intervals per slot: both take its profile.
    joined = keys.merge(profile, on=["meter_id", "local_date", "slot"], how="left")
    return joined["value"].to_numpy(dtype="float64")


def _scale_to_registers(
    grid: pd.DataFrame,
    estimated: np.ndarray,
    both: np.ndarray,
    li: np.ndarray,
    ri: np.ndarray,
    value: np.ndarray,
    est: np.ndarray,
    method: np.ndarray,
    plausible: np.ndarray,
    cfg: VeeConfig,
) -> np.ndarray:
    """Scale each run's estimates to the register movement between its anchors (in place), unless the
    movement is no plausible consumption for the run -> the rows of the runs left unscaled for that."""
    reset = np.zeros(len(grid), dtype=bool)
    register = grid["register_kwh"].to_numpy(dtype="float64", na_value=np.nan)
    rows = np.flatnonzero(estimated & both & ~np.isnan(register[li]) & ~np.isnan(register[ri]))
    if not len(rows):
        return reset
    runs = pd.DataFrame(
        {"row": rows, "run": li[rows], "est": est[rows], "span": ri[rows] - li[rows] - 1, "read": value[rows]}
    )
    runs["run_target"] = register[ri[rows]] - np.maximum(value[ri[rows]], 0.0) - register[li[rows]]
    per_run = runs.groupby("run").agg(
        total=("est", "sum"),
        low=("est", "min"),
        size=("est", "size"),
        span=("span", "first"),
        target=("run_target", "first"),
        read_total=("read", "sum"),
        read_count=("read", "count"),
    )
    # The register confirms what was read over the run (a real spike the rules estimated): its
    # movement is consumption however high, and scaling puts the read energy back.
    agrees = np.abs(per_run["target"] - per_run["read_total"]) <= np.maximum(
        cfg.register_tolerance_kwh, cfg.register_tolerance_share * per_run["read_total"].abs()
    )
    per_run["confirmed"] = (per_run["read_count"] == per_run["size"]) & agrees
    # Only runs estimated whole (no failed interval inside) and of import energy on both counts.
    whole = (per_run["size"] == per_run["span"]) & (per_run["low"] >= 0)
    runs = runs.join(per_run[whole][["total", "size", "target", "confirmed"]], on="run", how="inner")
    if runs.empty:
        return reset
    scaled = np.where(
        runs["total"] > 0, runs["est"] * runs["target"] / runs["total"], runs["target"] / runs["size"]
    )
    at = runs["row"].to_numpy()
    # A register that went backwards, or a movement that would put an interval above what its day
    # makes plausible, is a reset, rollover or meter exchange, not consumption: the run stays unscaled.
    over = pd.Series(scaled > plausible[at]).groupby(runs["run"].to_numpy()).transform("any").to_numpy()
    over = over & ~runs["confirmed"].to_numpy(dtype=bool)
    target = runs["target"].to_numpy()
    implausible = (target < -cfg.register_tolerance_kwh) | over
    reset[at[implausible]] = True
    scale = ~implausible & (target >= 0)
    est[at[scale]] = scaled[scale]
    method[at[scale]] = method[at[scale]] + "+register_scaled"
    return reset
