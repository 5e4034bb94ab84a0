"""Stability figures of grid nodes per time window (an hour by default), on the raw samples.

Frequency (deviation from the area's nominal): mean and population standard deviation of the
deviation, its extremes, the share of samples beyond the area's standard frequency range and the time
beyond it (each sample standing for the time `timeline.py` gives it, so a gap is not time outside),
the largest steady-state deviation (`states.py`) and the rate of change of frequency (RoCoF).

RoCoF is max |df/dt| over the shortest window the sample rate allows that is at least 500 ms: from
the sample k earlier to each sample, k = ceil(0.5 s / the sample's cadence, `timeline.py`), so 500 ms
at 100 ms sampling, 1 s at 1 s sampling, and 10 s with 10 s data (`rocof_window_s` gives the longest
window in the hour). Pairs across a gap are left out. Coarse data smooths RoCoF: a 10 s figure is not
comparable with a relay's 500 ms RoCoF.

Voltage (EN 50160): 10-minute means of the samples that have a voltage, and the share of them within
+/-10 % of the nominal voltage (230 V by default); a week complies when at least 95 % of its 10-minute
means do (`weekly_voltage_compliance`). Load: mean and peak load and the smallest margin to capacity.
A frequency-only node (no voltage, no load) gets nulls for those, never invented values.

A sample left out as a sensor fault (`excluded`, `analysis.excluded`: its deviation NaN, standing for
no time) counts in `sample_count` and `excluded_samples` and with its voltage and load, in no
frequency figure; an hour of nothing else has them null.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from metrify_assets.grid.timeline import Floats, Timeline

NOMINAL_VOLTAGE_V = 230.0  # low-voltage nominal (EN 50160); configurable per run
VOLTAGE_TOLERANCE = 0.10  # EN 50160: 10-minute means within +/-10 % of nominal ...
WEEKLY_COMPLIANCE_SHARE = 0.95  # ... for 95 % of a week
VOLTAGE_WINDOW = "10min"
MIN_ROCOF_WINDOW_S = 0.5

# Per-sample columns `window_figures` reads (`analysis.py` builds them).
SAMPLE_COLUMNS = [
    "grid_node_id",
    "measured_at",
    "area",
    "standard_range_hz",
    "deviation_hz",
    "excluded",
    "duration_s",
    "gap_after",
    "steady_hz",
    "state",
    "rocof_hz_s",
    "rocof_window_s",
    "voltage_v",
    "load_mw",
    "capacity_mw",
]
FIGURE_COLUMNS = [
    "grid_node_id",
    "hour_start",
    "area",
    "sample_count",
    "excluded_samples",
    "covered_minutes",
    "mean_deviation_hz",
    "std_deviation_hz",
    "min_deviation_hz",
    "max_deviation_hz",
    "max_abs_deviation_hz",
    "max_abs_steady_state_hz",
    "standard_range_hz",
    "share_outside_standard",
    "minutes_outside_standard",
    "rocof_max_hz_s",
    "rocof_window_s",
    "voltage_samples",
    "mean_voltage_v",
    "voltage_windows",
    "voltage_windows_within",
    "voltage_within_share",
    "max_voltage_deviation_share",
    "mean_load_mw",
    "max_load_mw",
    "capacity_mw",
    "min_load_margin_mw",
    "min_load_margin_share",
    "alert_minutes",
    "emergency_minutes",
    "worst_state",
]


@dataclass(frozen=True)
class VoltageConfig:
    nominal_v: float = NOMINAL_VOLTAGE_V
    tolerance: float = VOLTAGE_TOLERANCE
    weekly_share: float = WEEKLY_COMPLIANCE_SHARE


def rocof(
    frequency: Floats, line: Timeline, min_window_s: float = MIN_ROCOF_WINDOW_S
) -> tuple[Floats, Floats]:
    """Per sample, df/dt (Hz/s) from the sample k earlier to it, k = ceil(min_window_s / cadence) with
    the sample's cadence (NaN for the first k samples, across a gap, or without a cadence), and the
    window k x cadence in seconds (NaN without a cadence). Trailing, so a sample's rate never depends
    on samples after it."""
    n = line.size
    rates, windows = np.full(n, np.nan), np.full(n, np.nan)
    step = line.cadence_s
    known = np.isfinite(step) & (step > 0)
    if not known.any():
        return rates, windows
    k = np.ones(n, dtype=np.int64)
    k[known] = np.maximum(1, np.ceil(min_window_s / step[known] - 1e-9)).astype(np.int64)
    windows[known] = k[known] * step[known]
    earlier = np.arange(n) - k
    ok = known & (earlier >= 0)
    i, j = np.flatnonzero(ok), earlier[ok]
    same = line.segment[i] == line.segment[j]
    i, j = i[same], j[same]
    rates[i] = (frequency[i] - frequency[j]) / (line.seconds[i] - line.seconds[j])
    return rates, windows


def window_figures(samples: pd.DataFrame, voltage: VoltageConfig, window: str = "1h") -> pd.DataFrame:
    """FIGURE_COLUMNS per node and window (`hour_start` is the window's start) of the samples
    (SAMPLE_COLUMNS; `state` coded 0 normal, 1 alert, 2 emergency)."""
    if samples.empty:
        return pd.DataFrame(columns=FIGURE_COLUMNS)
    s = samples.assign(
        hour_start=samples["measured_at"].dt.floor(window),
        abs_dev=samples["deviation_hz"].abs(),
        abs_steady=samples["steady_hz"].abs(),
        abs_rocof=samples["rocof_hz_s"].abs(),
    )
    beyond = s["abs_dev"] > s["standard_range_hz"]
    s["outside"] = beyond.astype(float).where(s["abs_dev"].notna())  # an excluded sample: in no share
    s["outside_s"] = s["duration_s"].where(beyond, 0.0)
    s["alert_s"] = s["duration_s"].where(s["state"] == 1, 0.0)
    s["emergency_s"] = s["duration_s"].where(s["state"] == 2, 0.0)
    margin = s["capacity_mw"] - s["load_mw"]
    s["margin_mw"] = margin
    s["margin_share"] = margin / s["capacity_mw"].where(s["capacity_mw"] > 0)
    keys = ["grid_node_id", "hour_start"]
    g = s.groupby(keys, sort=True)
    out = g.agg(
        area=("area", "first"),
        sample_count=("deviation_hz", "size"),
        excluded_samples=("excluded", "sum"),
        covered_s=("duration_s", "sum"),
        mean_deviation_hz=("deviation_hz", "mean"),
        min_deviation_hz=("deviation_hz", "min"),
        max_deviation_hz=("deviation_hz", "max"),
        max_abs_deviation_hz=("abs_dev", "max"),
        max_abs_steady_state_hz=("abs_steady", "max"),
        standard_range_hz=("standard_range_hz", "first"),
        share_outside_standard=("outside", "mean"),
        outside_s=("outside_s", "sum"),
        rocof_max_hz_s=("abs_rocof", "max"),
        rocof_window_s=("rocof_window_s", "max"),
        voltage_samples=("voltage_v", "count"),
        mean_voltage_v=("voltage_v", "mean"),
        mean_load_mw=("load_mw", "mean"),
        max_load_mw=("load_mw", "max"),
        capacity_mw=("capacity_mw", "min"),
        min_load_margin_mw=("margin_mw", "min"),
        min_load_margin_share=("margin_share", "min"),
        alert_s=("alert_s", "sum"),
        emergency_s=("emergency_s", "sum"),
        worst=("state", "max"),
    )
    out["std_deviation_hz"] = g["deviation_hz"].std(ddof=0)
    out["covered_minutes"] = out.pop("covered_s") / 60
    out["minutes_outside_standard"] = out.pop("outside_s") / 60
    out["alert_minutes"] = out.pop("alert_s") / 60
    out["emergency_minutes"] = out.pop("emergency_s") / 60
    out["worst_state"] = out.pop("worst").map({0: "normal", 1: "alert", 2: "emergency"})
    out = out.join(_voltage_windows(s, voltage), how="left")
    out["voltage_windows"] = out["voltage_windows"].fillna(0).astype(int)
    out["voltage_windows_within"] = out["voltage_windows_within"].fillna(0).astype(int)
    out["voltage_within_share"] = out["voltage_windows_within"] / out["voltage_windows"].where(
        out["voltage_windows"] > 0
    )
    return out.reset_index()[FIGURE_COLUMNS]


def _voltage_windows(s: pd.DataFrame, voltage: VoltageConfig) -> pd.DataFrame:
    """Per node and window: 10-minute voltage means, those within tolerance, the largest relative
    deviation of a 10-minute mean from nominal."""
    v = s.loc[s["voltage_v"].notna(), ["grid_node_id", "hour_start", "measured_at", "voltage_v"]]
    columns = ["voltage_windows", "voltage_windows_within", "max_voltage_deviation_share"]
    if v.empty:
        return pd.DataFrame(
            columns=columns, index=pd.MultiIndex.from_tuples([], names=["grid_node_id", "hour_start"])
        )
    means = (
        v.assign(ten=v["measured_at"].dt.floor(VOLTAGE_WINDOW))
        .groupby(["grid_node_id", "hour_start", "ten"])["voltage_v"]
        .mean()
    )
    relative = ((means - voltage.nominal_v).abs() / voltage.nominal_v).rename("relative").reset_index()
    relative["within"] = relative["relative"] <= voltage.tolerance
    return relative.groupby(["grid_node_id", "hour_start"]).agg(
        voltage_windows=("relative", "size"),
        voltage_windows_within=("within", "sum"),
        max_voltage_deviation_share=("relative", "max"),
    )


def weekly_voltage_compliance(daily: pd.DataFrame, voltage: VoltageConfig) -> pd.DataFrame:
    """EN 50160 over the 7 days ending each day: `daily` has grid_node_id, day (date),
    voltage_windows, voltage_windows_within (the day's 10-minute means; days may be missing) ->
    per node and day of `daily`: week_windows, week_within_share (None without any 10-minute mean) and
    week_compliant (share >= 95 %, None without any)."""
    columns = ["grid_node_id", "day", "week_windows", "week_within_share", "week_compliant"]
    if daily.empty:
        return pd.DataFrame(columns=columns)
    d = daily.assign(day=pd.to_datetime(daily["day"])).sort_values(["grid_node_id", "day"])
    rows = []
    for node, days in d.groupby("grid_node_id", sort=False):
        indexed = days.set_index("day")[["voltage_windows", "voltage_windows_within"]].astype(float)
        week = indexed.rolling("7D").sum()
        for day, windows, within in week.itertuples(name=None):
            share = within / windows if windows > 0 else None
            rows.append(
                (
                    node,
                    day.date(),
                    int(windows),
                    share,
                    None if share is None else bool(share >= voltage.weekly_share),
                )
            )
    return pd.DataFrame(rows, columns=columns)
