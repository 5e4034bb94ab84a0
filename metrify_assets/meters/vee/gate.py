"""The billing-readiness gate: may a meter-day be billed from its VEE series?

As Itron's billing gates do, the gate compares the day's shares of missing, estimated, edited (to
another value: a reviewer's approval keeps the reading's) and failed intervals with configured
thresholds (`VeeConfig.gate_*_share`); a day still in progress
(`day_open`) is never ready, nor is a day too empty to estimate (`estimation_skipped`). The day
summary also carries the counts by status, the energy split into actual (as read, or kept by a
reviewer) and estimated (by VEE, or after a reviewer's rejection), and whether the day had an outage (a
`power_fail` status), which keeps it out of later like-day profiles.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from metrify_assets.meters.vee.catalogue import VeeConfig
from metrify_assets.meters.vee.grid import day_keys

DAY_COLUMNS = [
    "meter_id",
    "local_date",
    "timezone",
    "interval_minutes",
    "expected_intervals",
    "actual_intervals",
    "estimated_intervals",
    "edited_intervals",
    "missing_intervals",
    "failed_intervals",
    "flagged_intervals",
    "actual_kwh",
    "estimated_kwh",
    "outage",
    "estimation_skipped",
    "billing_ready",
    "gate_failures",
]
STATUSES = ("actual", "estimated", "edited", "missing", "failed")


def summarise_days(
    grid: pd.DataFrame, series: pd.DataFrame, skipped: pd.Series, flagged: np.ndarray, config: VeeConfig
) -> pd.DataFrame:
    """One row per meter-day of `series` in DAY_COLUMNS, with the gate's verdict."""
    if series.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in DAY_COLUMNS})
    billable = series["status"].isin(["actual", "estimated", "edited"]).to_numpy()
    read_energy = series["method"].isin(["actual", "review_approved"]).to_numpy() & billable
    frame = series[["meter_id", "local_date", "status", "energy_kwh"]].assign(
        timezone=grid["timezone"].to_numpy(),
        interval_minutes=grid["interval_minutes"].to_numpy(),
        day_closed=grid["day_closed"].to_numpy(dtype=bool),
        outage=grid["status_flags"].fillna("").astype(str).str.contains("power_fail", regex=False).to_numpy(),
        flagged=flagged & (series["status"] == "actual").to_numpy(),
        # Edited to another value (estimated after a reviewer's rejection): the gate's edited share. A
        # reviewer's approval keeps the value as read, billed as actual energy: it counts as read, or
        # confirming flagged readings would make a day less billable than leaving them undecided.
        changed=(series["status"] == "edited").to_numpy() & ~read_energy,
        # As read (actual, or kept by a reviewer) against estimated (by VEE, or after a rejection).
        actual_energy=np.where(read_energy, series["energy_kwh"], 0.0),
        estimated_energy=np.where(billable & ~read_energy, series["energy_kwh"], 0.0),
    )
    for status in STATUSES:
        frame[f"{status}_intervals"] = (frame["status"] == status).astype("int64")
    days = frame.groupby(["meter_id", "local_date"], sort=True).agg(
        timezone=("timezone", "first"),
        interval_minutes=("interval_minutes", "first"),
        expected_intervals=("status", "size"),
        actual_intervals=("actual_intervals", "sum"),
        estimated_intervals=("estimated_intervals", "sum"),
        edited_intervals=("edited_intervals", "sum"),
        missing_intervals=("missing_intervals", "sum"),
        failed_intervals=("failed_intervals", "sum"),
        flagged_intervals=("flagged", "sum"),
        changed_intervals=("changed", "sum"),
        actual_kwh=("actual_energy", "sum"),
        estimated_kwh=("estimated_energy", "sum"),
        outage=("outage", "any"),
        day_closed=("day_closed", "all"),
    )
    days = days.reset_index()
    days["estimation_skipped"] = pd.Series(day_keys(days)).map(skipped).fillna(False).astype(bool).to_numpy()
    days["gate_failures"] = gate_failures(days, config)
    days["billing_ready"] = days["gate_failures"] == ""
    days["actual_kwh"] = days["actual_kwh"].round(6)
    days["estimated_kwh"] = days["estimated_kwh"].round(6)
    return days[DAY_COLUMNS]


def gate_failures(days: pd.DataFrame, config: VeeConfig) -> pd.Series:
    """Comma-joined names of the gate's tests each day fails ("" when it may be billed). The edited
    share counts the `edited` intervals whose value changed (`changed_intervals`), not approvals."""
    expected = days["expected_intervals"].clip(lower=1)
    tests = {
        "day_open": ~days["day_closed"].astype(bool),
        "estimation_skipped": days["estimation_skipped"].astype(bool),
        "missing_share": days["missing_intervals"] / expected > config.gate_missing_share,
        "estimated_share": days["estimated_intervals"] / expected > config.gate_estimated_share,
        "edited_share": days["changed_intervals"] / expected > config.gate_edited_share,
        "failed_share": days["failed_intervals"] / expected > config.gate_failed_share,
    }
    joined = pd.Series("", index=days.index, dtype=object)
    for name, failing in tests.items():
        joined = joined + np.where(failing, name + ",", "")
    return joined.str.rstrip(",")
