"""The VEE validation catalogue: named interval checks with a reason code and a severity.

The checks are those of the interval VEE in Oracle Utilities MDM and Itron IEE, applied to a meter's
local day on its interval grid (built by `grid.py`). Each yields a boolean mask over the grid; the
severity of the rules that fire decides what happens to an interval:

- `estimate`: the value read is discarded and the interval is estimated (`estimation.py`);
- `reject`: the value read is discarded and the interval fails, never estimated nor billed as read;
- `flag`: the value is kept as read and the reason recorded (it counts as flagged, not failed).

Some checks run at ingest (the record rules reject such records into `ops.quarantine`); VEE takes the
quarantined meter readings of its days back in as candidates so the series says why an interval has
no value (`INGEST_REASONS`). Rules, defaults and severities are documented in docs/quality.md.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from typing import Literal

import numpy as np
import pandas as pd

from metrify_assets.meters.vee.grid import day_keys
from metrify_assets.quality.rules import RuleConfig

Severity = Literal["reject", "estimate", "flag"]
SEVERITIES: tuple[Severity, ...] = ("reject", "estimate", "flag")
RULES_REVISION = "vee-2"  # vee-2: register_reset; register scaling bounded by plausible_interval_kwh
# The most energy one interval can hold: the record rules reject a reading above it at ingest and
# the GX suite `vee_meter_readings` holds the billing series to it (+/-1000 kWh). VEE reads it here.
MAX_INTERVAL_KWH = RuleConfig().max_energy_kwh_per_interval


@dataclass(frozen=True)
class VeeRule:
    """One check of the catalogue: its reason code, default severity, and what it looks at."""

    code: str
    severity: Severity
    stage: Literal["vee", "ingest"]
    description: str


CATALOGUE: dict[str, VeeRule] = {
    r.code: r
    for r in (
        VeeRule(
            "gap",
            "estimate",
            "vee",
            "No reading, nor a rejected one that explains why, for a due interval of the meter's day.",
        ),
        VeeRule(
            "interval_size_mismatch",
            "reject",
            "vee",
            "The reading's interval length differs from the meter's (the modal length of its readings).",
        ),
        VeeRule(
            "spike",
            "estimate",
            "vee",
            "The interval exceeds `spike_ratio` x the k-th highest interval of the day (and `spike_floor_kwh`).",
        ),
        VeeRule(
            "high_usage",
            "flag",
            "vee",
            "The day's energy (pro-rated to its valid intervals) exceeds `high_ratio` x the meter's "
            "average daily use over its history window.",
        ),
        VeeRule(
            "low_usage",
            "flag",
            "vee",
            "The day's energy is below `low_ratio` x the meter's average daily use (history above "
            "`low_min_avg_kwh`).",
        ),
        VeeRule(
            "consecutive_identical",
            "flag",
            "vee",
            "At least `identical_run` back-to-back intervals with the same non-zero value (a stuck register).",
        ),
        VeeRule(
            "prolonged_zero",
            "estimate",
            "vee",
            "At least `zero_run` back-to-back zero intervals without a `power_fail` status (with one, "
            "the zeros are an outage and stay).",
        ),
        VeeRule(
            "negative_consumption",
            "estimate",
            "ingest",
            "Negative energy without direction export (record rule `negative_energy`) on an interval "
            "with no stored reading.",
        ),
        VeeRule(
            "reverse_flow",
            "flag",
            "vee",
            "Export during the night window (`night_hours`, local), when no solar can produce it.",
        ),
        VeeRule(
            "duplicate_conflict",
            "flag",
            "ingest",
            "Another copy of the interval arrived with a different value (record rule "
            "`duplicate_conflict`); the stored version is kept.",
        ),
        VeeRule(
            "clock_fault",
            "estimate",
            "ingest",
            "A reading stamped off the interval grid (record rule `timestamp_misaligned`), placed on "
            "the nearest interval start; when that interval is empty, it has no trusted reading.",
        ),
        VeeRule("clock_set", "flag", "vee", "The meter reported a `clock_set` status for the interval."),
        VeeRule(
            "register_mismatch",
            "estimate",
            "vee",
            "Between two adjacent readings, the import register moved by more than the interval's import "
            "energy allows (`register_tolerance_kwh`, `register_tolerance_share`).",
        ),
        VeeRule(
            "register_reset",
            "flag",
            "vee",
            "The import register went backwards (beyond `register_tolerance_kwh`) or moved by more than "
            "the intervals it spans can plausibly use (each above its day's spike limit or the record "
            "rules' `max_energy_kwh_per_interval`): a register reset, rollover or meter exchange. Between "
            "two readings, or across a run being estimated: its estimates are not scaled to the register.",
        ),
        VeeRule(
            "before_install",
            "reject",
            "vee",
            "A reading on a day before the meter's install date (`ops.meters.installed_on`).",
        ),
        VeeRule(
            "timestamp_implausible",
            "reject",
            "ingest",
            "Before 2000-01-01 or later than now (record rules `timestamp_implausible`, "
            "`timestamp_in_future`): never reaches a meter-day.",
        ),
        VeeRule(
            "review_rejected",
            "estimate",
            "ingest",
            "A reviewer rejected the flagged reading (`metrify review reject`): estimated as an edit "
            "by that reviewer.",
        ),
    )
}

# Quarantine reason (record rules) -> VEE reason code of the interval the record belongs to.
INGEST_REASONS = {
    "negative_energy": "negative_consumption",
    "duplicate_conflict": "duplicate_conflict",
    "timestamp_misaligned": "clock_fault",
    "review_rejected": "review_rejected",
}


@dataclass(frozen=True)
class VeeConfig:
    """Thresholds of the catalogue, the estimation and the billing gate (docs/quality.md)."""

    default_interval_minutes: int = 15
    spike_k: int = 3
    spike_ratio: float = 4.0
    spike_floor_kwh: float = 0.5
    high_ratio: float = 3.0
    low_ratio: float = 0.1
    low_min_avg_kwh: float = 1.0
    history_days: int = 28
    identical_run: int = 8
    zero_run: int = 8
    night_hours: tuple[int, int] = (22, 4)  # local [start, end): export here is reverse flow
    register_tolerance_kwh: float = 0.01
    register_tolerance_share: float = 0.02
    # Estimation
    max_interpolation_minutes: int = 120
    like_day_weeks: int = 4
    max_missing_share: float = 0.5  # above it a day is not estimated, only flagged
    # Billing gate: the largest share of the day's intervals in each state
    gate_missing_share: float = 0.0
    gate_estimated_share: float = 0.2
    gate_edited_share: float = 0.2
    gate_failed_share: float = 0.0
    severities: dict[str, Severity] = field(default_factory=dict)  # overrides of the defaults

    def __post_init__(self) -> None:
        unknown = set(self.severities) - set(CATALOGUE)
        if unknown:
            raise ValueError(f"unknown VEE rules {sorted(unknown)}; known: {sorted(CATALOGUE)}")
        bad = {c: s for c, s in self.severities.items() if s not in SEVERITIES}
        if bad:
            raise ValueError(f"severities must be one of {SEVERITIES}, got {bad}")

    def severity(self, code: str) -> Severity:
        return self.severities.get(code, CATALOGUE[code].severity)

    def with_severities(self, **overrides: Severity) -> VeeConfig:
        return replace(self, severities={**self.severities, **overrides})

    @property
    def rule_version(self) -> str:
        """`vee-2.<hash of the thresholds>`: changing any threshold or severity changes the version."""
        digest = hashlib.sha256(json.dumps(asdict(self), sort_keys=True, default=str).encode())
        return f"{RULES_REVISION}.{digest.hexdigest()[:8]}"


def _runs(keys: np.ndarray, values: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run id and run length of back-to-back equal valid values within each key (rows in time order)."""
    same = np.zeros(len(values), dtype=bool)
    same[1:] = (keys[1:] == keys[:-1]) & valid[1:] & valid[:-1] & (values[1:] == values[:-1])
    run_id = np.cumsum(~same)
    length = np.bincount(run_id)[run_id] if len(run_id) else run_id
    return run_id, length


def validate(grid: pd.DataFrame, history_avg_kwh: pd.Series, config: VeeConfig) -> pd.DataFrame:
    """One boolean column per catalogue rule, aligned to `grid` (see `grid.py` for its columns).

    `grid` is sorted by meter and interval start; `history_avg_kwh` is the meter's average daily net
    energy over its history window (meters without history are not judged high or low).
    """
    cfg = config
    value = grid["value"].to_numpy(dtype="float64", na_value=np.nan)
    has_value = ~np.isnan(value)
    flags = grid["status_flags"].fillna("").astype(str)
    ingest = grid["ingest_reasons"].fillna("").astype(str)
    masks: dict[str, np.ndarray] = {}

    masks["interval_size_mismatch"] = has_value & (
        grid["read_interval"].to_numpy(dtype="float64", na_value=np.nan)
        != grid["interval_minutes"].to_numpy(dtype="float64")
    )
    masks["before_install"] = grid["before_install"].to_numpy(dtype=bool) & has_value
    for reason, code in INGEST_REASONS.items():
        masks[code] = ingest.str.contains(reason, regex=False).to_numpy()
    # A rejected copy explains an empty interval; beside a stored reading (a newer version, a
    # correction after a reviewer's rejection) it says nothing about the stored one.
    for code in ("negative_consumption", "clock_fault", "review_rejected"):
        masks[code] = masks[code] & ~has_value
    explained = masks["negative_consumption"] | masks["clock_fault"] | masks["review_rejected"]
    masks["gap"] = ~has_value & ~explained & grid["due"].to_numpy(dtype=bool)
    masks["clock_set"] = flags.str.contains("clock_set", regex=False).to_numpy()
    power_fail = flags.str.contains("power_fail", regex=False).to_numpy()

    usable = has_value & ~masks["interval_size_mismatch"] & ~masks["before_install"]
    day_key = pd.factorize(day_keys(grid))[0]
    masks["spike"] = _spikes(day_key, value, usable, cfg)

    meter_key = pd.factorize(grid["meter_id"])[0]
    zero = usable & (value == 0)
    zero_id, zero_len = _runs(meter_key, np.where(zero, 0.0, np.nan), zero)
    zero_run = zero & (zero_len >= cfg.zero_run)
    outage_run = np.zeros(len(grid), dtype=bool)
    if zero_run.any():
        outage_ids = np.unique(zero_id[zero_run & power_fail])
        outage_run = zero_run & np.isin(zero_id, outage_ids)
    masks["prolonged_zero"] = zero_run & ~outage_run
    nonzero = usable & (value != 0)
    _, same_len = _runs(meter_key, value, nonzero)
    masks["consecutive_identical"] = nonzero & (same_len >= cfg.identical_run)

    hour = (grid["slot"].to_numpy(dtype="int64") // 60).astype("int64")
    start, end = cfg.night_hours
    night = (hour >= start) | (hour < end) if start > end else (hour >= start) & (hour < end)
    masks["reverse_flow"] = usable & (value < 0) & night
    plausible = plausible_interval_kwh(day_key, value, usable, cfg)
    masks["register_mismatch"], masks["register_reset"] = _register_checks(
        grid, meter_key, value, usable, plausible, cfg
    )
    masks["high_usage"], masks["low_usage"] = _high_low(grid, day_key, value, usable, history_avg_kwh, cfg)
    masks["timestamp_implausible"] = np.zeros(len(grid), dtype=bool)  # rejected at ingest
    return pd.DataFrame({code: masks[code] for code in CATALOGUE}, index=grid.index)


def spike_limit(day_key: np.ndarray, value: np.ndarray, basis: np.ndarray, cfg: VeeConfig) -> np.ndarray:
    """Per row, the most energy an interval of its meter-day holds before it is a `spike`:
    `spike_ratio` x the day's `spike_k`-th highest interval among the `basis` rows, and at least
    `spike_floor_kwh`; inf on a day with fewer than `spike_k` such intervals (it is not judged)."""
    ranked = np.where(basis, value, -np.inf)
    order = np.lexsort((-ranked, day_key))
    rank = np.empty(len(value), dtype=np.int64)
    sorted_keys = day_key[order]
    starts = np.r_[0, np.flatnonzero(sorted_keys[1:] != sorted_keys[:-1]) + 1] if len(order) else order
    group_start = np.zeros(len(order), dtype=np.int64)
    if len(order):
        group_start[starts] = starts
        group_start = np.maximum.accumulate(group_start)
    rank[order] = np.arange(len(order)) - group_start
    kth = pd.Series(np.where((rank == cfg.spike_k - 1) & basis, value, np.nan))
    kth_of_day = kth.groupby(day_key).transform("max").to_numpy(dtype="float64")
    limit = np.maximum(cfg.spike_ratio * kth_of_day, cfg.spike_floor_kwh)
    return np.where(np.isnan(kth_of_day), np.inf, limit)


def plausible_interval_kwh(
    day_key: np.ndarray, value: np.ndarray, basis: np.ndarray, cfg: VeeConfig
) -> np.ndarray:
    """Per row, the most import energy VEE takes as plausible for one interval of its meter-day: not a
    `spike` of the day (`spike_limit` over the `basis` rows) and within `MAX_INTERVAL_KWH`. Register
    movements are judged by it (`register_reset`, register scaling in `estimation.py`)."""
    return np.minimum(spike_limit(day_key, value, basis, cfg), MAX_INTERVAL_KWH)


def _spikes(day_key: np.ndarray, value: np.ndarray, usable: np.ndarray, cfg: VeeConfig) -> np.ndarray:
    """Intervals above the day's spike limit (spike_ratio x its k-th highest usable interval, and the floor)."""
    with np.errstate(invalid="ignore"):
        return usable & (value > spike_limit(day_key, value, usable, cfg))


def _register_checks(
    grid: pd.DataFrame,
    meter_key: np.ndarray,
    value: np.ndarray,
    usable: np.ndarray,
    plausible: np.ndarray,
    cfg: VeeConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """(`register_mismatch`, `register_reset`) of the later of two adjacent usable readings of a meter
    with registers: the register's movement disagrees with the interval's import energy; and, so
    disagreeing, it went backwards or moved further than the interval can plausibly use (`plausible`)."""
    mismatch, reset = np.zeros(len(grid), dtype=bool), np.zeros(len(grid), dtype=bool)
    if len(grid) < 2:
        return mismatch, reset
    register = grid["register_kwh"].to_numpy(dtype="float64", na_value=np.nan)
    start = grid["reading_start"].to_numpy(dtype="datetime64[us]").astype("int64")
    step = grid["interval_minutes"].to_numpy(dtype="int64") * 60_000_000
    adjacent = (meter_key[1:] == meter_key[:-1]) & (start[1:] == start[:-1] + step[:-1])
    both = adjacent & usable[1:] & usable[:-1] & ~np.isnan(register[1:]) & ~np.isnan(register[:-1])
    delta = register[1:] - register[:-1]
    expected = np.maximum(value[1:], 0.0)
    tolerance = np.maximum(cfg.register_tolerance_kwh, cfg.register_tolerance_share * np.abs(expected))
    with np.errstate(invalid="ignore"):
        mismatch[1:] = both & (np.abs(delta - expected) > tolerance)
        # Only where the register disagrees with the reading: a spike it confirms is consumption.
        reset[1:] = mismatch[1:] & ((delta < -cfg.register_tolerance_kwh) | (delta > plausible[1:]))
    return mismatch, reset


def _high_low(
    grid: pd.DataFrame,
    day_key: np.ndarray,
    value: np.ndarray,
    usable: np.ndarray,
    history_avg_kwh: pd.Series,
    cfg: VeeConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """Day energy, pro-rated to the day's length from its usable intervals, against the history."""
    frame = pd.DataFrame({"day": day_key, "v": np.where(usable, value, 0.0), "n": usable})
    per_day = frame.groupby("day").agg(v=("v", "sum"), n=("n", "sum"))
    expected = pd.Series(grid["expected_intervals"].to_numpy(), index=day_key).groupby(level=0).first()
    projected = (per_day["v"] * expected / per_day["n"].where(per_day["n"] > 0)).to_numpy()[day_key]
    avg = grid["meter_id"].map(history_avg_kwh).to_numpy(dtype="float64", na_value=np.nan)
    with np.errstate(invalid="ignore"):
        high = (projected > cfg.high_ratio * avg) & (avg > 0)
        low = (projected < cfg.low_ratio * avg) & (avg >= cfg.low_min_avg_kwh)
    return high & grid["due"].to_numpy(dtype=bool), low & grid["day_closed"].to_numpy(dtype=bool)
