"""Record-level rules: decide accept / flag / reject for each decoded record of a batch.

The rules run vectorised over one source's batch (a DataFrame typed after `contracts.py`, plus
`record_index`). Each rule yields a boolean mask named by a reason code; a record with any reject
reason is rejected, else with any flag reason it is flagged for review, else accepted. Reason codes,
their decisions and thresholds are documented in docs/quality.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa

from metrify_assets.contracts import contract_for
from metrify_assets.grid.frequency import GRID_FREQUENCY
from metrify_assets.grid.stability import NOMINAL_VOLTAGE_V

DIRECTIONS = ("import", "export")  # of energy at a meter; missing means import
Decision = Literal["accept", "flag", "reject"]
DECISIONS: tuple[Decision, ...] = ("accept", "flag", "reject")
Category = Literal["value", "duplicate", "review"]


@dataclass(frozen=True)
class Reason:
    """A reason code, what it decides, and which quality dimension it counts against."""

    code: str
    decision: Decision
    category: Category  # value -> accuracy, duplicate -> consistency, review -> flags only


REASONS: dict[str, Reason] = {
    r.code: r
    for r in (
        Reason("negative_energy", "reject", "value"),
        Reason("direction_invalid", "reject", "value"),
        Reason("interval_invalid", "reject", "value"),
        Reason("timestamp_misaligned", "reject", "value"),
        Reason("timestamp_in_future", "reject", "value"),
        Reason("timestamp_implausible", "reject", "value"),
        Reason("duplicate_exact", "reject", "duplicate"),
        Reason("duplicate_conflict", "reject", "duplicate"),
        Reason("energy_implausible", "reject", "value"),
        Reason("voltage_implausible", "reject", "value"),
        Reason("power_factor_implausible", "reject", "value"),
        Reason("frequency_implausible", "reject", "value"),
        Reason("load_negative_implausible", "reject", "value"),
        Reason("temperature_implausible", "reject", "value"),
        Reason("humidity_implausible", "reject", "value"),
        Reason("pressure_implausible", "reject", "value"),
        Reason("wind_implausible", "reject", "value"),
        Reason("precipitation_implausible", "reject", "value"),
        Reason("spike", "flag", "review"),
        Reason("zero_run", "flag", "review"),
        Reason("voltage_out_of_range", "flag", "review"),
        Reason("power_factor_out_of_range", "flag", "review"),
        Reason("frequency_out_of_range", "flag", "review"),
    )
}
# The reasons a record is queued for review with (a reject reason quarantines it instead): the values
# the review queue's reason filter takes, in the CLI and the API.
FLAG_REASONS = tuple(code for code, reason in REASONS.items() if reason.decision == "flag")


@dataclass(frozen=True)
class RuleConfig:
    """Thresholds of the record rules; defaults follow GB / EN 50160 practice (docs/quality.md)."""

    valid_intervals: frozenset[int] = frozenset({5, 10, 15, 30, 60})
    max_energy_kwh_per_interval: float = 1000.0
    spike_factor: float = 8.0
    spike_floor_kwh: float = 0.5
    zero_run_length: int = 8
    meter_nominal_voltage_v: float = 230.0
    voltage_tolerance: float = 0.10  # +/- share of nominal before a reading is flagged
    meter_voltage_max_v: float = 500.0  # above (or below 0): physically implausible
    power_factor_min_abs: float = 0.8  # |pf| below this is flagged
    grid_nominal_hz: float = GRID_FREQUENCY.nominal_hz
    frequency_statutory_hz: float = GRID_FREQUENCY.statutory_band_hz  # +/- around nominal before flagging
    frequency_plausible_hz: float = GRID_FREQUENCY.plausible_band_hz  # +/- around nominal before rejecting
    grid_nominal_voltage_v: float = NOMINAL_VOLTAGE_V  # EN 50160 low voltage, as grid/stability.py
    future_tolerance_minutes: int = 5  # grid and weather, and meters with an invalid interval
    # Before this, a timestamp is a device clock reset (1970-01-01 is the classic), not history.
    earliest_plausible: str = "2000-01-01T00:00:00Z"
    temperature_c: tuple[float, float] = (-60.0, 60.0)
    humidity_pct: tuple[float, float] = (0.0, 100.0)
    pressure_hpa: tuple[float, float] = (850.0, 1090.0)
    wind_speed_ms: tuple[float, float] = (0.0, 80.0)


@dataclass(frozen=True)
class RuleOutcome:
    """Per-record decisions and reasons, aligned to the evaluated frame's index."""

    source: str
    decision: pd.Series  # categorical accept / flag / reject
    reasons: pd.Series  # comma-joined reason codes, "" when none
    masks: pd.DataFrame  # one boolean column per reason code evaluated for the source

    def reason_counts(self) -> dict[str, int]:
        """Records per reason code (every code evaluated for the source, zeros included)."""
        return {str(code): int(n) for code, n in self.masks.sum().items()}

    def decision_counts(self) -> dict[str, int]:
        """Records per decision (all three decisions, zeros included)."""
        counts = self.decision.value_counts()
        return {d: int(counts.get(d, 0)) for d in DECISIONS}

    def has_category(self, category: Category) -> pd.Series:
        """Records with at least one reason of the given category (for the quality dimensions)."""
        codes = [c for c in self.masks.columns if REASONS[c].category == category]
        return self.masks[codes].any(axis=1) if codes else pd.Series(False, index=self.masks.index)


def _outside(values: pd.Series, low: float, high: float) -> np.ndarray:
    """True where a value lies outside [low, high]; missing values are not judged."""
    arr = values.to_numpy(dtype="float64", na_value=np.nan)
    with np.errstate(invalid="ignore"):
        return (arr < low) | (arr > high)


def _epoch_us(ts: pd.Series) -> np.ndarray:
    """Microseconds since the Unix epoch (UTC) of a tz-aware timestamp column."""
    return ts.dt.tz_convert("UTC").dt.as_unit("us").astype("int64").to_numpy()


def _duplicates(df: pd.DataFrame, columns: list[str], key: list[str]) -> dict[str, np.ndarray]:
    """Exact and conflicting duplicates; the earliest record (lowest record_index) is kept.

    Only records whose key repeats can be duplicates of either kind, so the comparison of every
    column runs on those alone (usually none): a fifth of the rules' time on a clean batch.
    """
    exact = np.zeros(len(df), dtype=bool)
    conflict = np.zeros(len(df), dtype=bool)
    repeated = df.duplicated(subset=key, keep=False).to_numpy()
    if repeated.any():
        candidates = df[repeated]
        order = np.argsort(candidates["record_index"].to_numpy(), kind="stable")
        ordered = candidates.iloc[order]
        same_columns = ordered.duplicated(subset=columns, keep="first").to_numpy()
        same_key = ordered.duplicated(subset=key, keep="first").to_numpy()
        positions = np.flatnonzero(repeated)[order]
        exact[positions] = same_columns
        conflict[positions] = same_key & ~same_columns
    return {"duplicate_exact": exact, "duplicate_conflict": conflict}


def _future(ts: pd.Series, now: pd.Timestamp, tolerance_us: np.ndarray | int) -> np.ndarray:
    """Records stamped later than now + tolerance (per row in microseconds, or one Timedelta)."""
    stamp = pd.Timestamp(now)
    now_us = (stamp if stamp.tzinfo else stamp.tz_localize("UTC")).value // 1000
    return _epoch_us(ts) > now_us + np.asarray(tolerance_us)


def _too_early(ts: pd.Series, cfg: RuleConfig) -> np.ndarray:
    return _epoch_us(ts) < pd.Timestamp(cfg.earliest_plausible).value // 1000


def _tolerance_us(cfg: RuleConfig) -> int:
    return cfg.future_tolerance_minutes * 60_000_000


def _meter_masks(df: pd.DataFrame, now: pd.Timestamp, cfg: RuleConfig) -> dict[str, np.ndarray]:
    energy = df["energy_kwh"].to_numpy(dtype="float64", na_value=np.nan)
    export = (df["direction"] == "export").fillna(False).to_numpy(dtype=bool)
    interval = df["interval_minutes"].to_numpy(dtype="float64", na_value=np.nan)
    interval_ok = np.isin(interval, np.array(sorted(cfg.valid_intervals), dtype="float64"))
    start_us = _epoch_us(df["reading_start"])
    step_us = np.where(interval_ok, interval, 1).astype("int64") * 60_000_000
    misaligned = interval_ok & (start_us % step_us != 0)
    future = _future(df["reading_start"], now, np.where(interval_ok, step_us, _tolerance_us(cfg)))
    with np.errstate(invalid="ignore"):
        negative = (energy < 0) & ~export
        implausible = np.abs(energy) > cfg.max_energy_kwh_per_interval
    direction = df["direction"]
    masks = {
        "negative_energy": negative,
        "direction_invalid": (direction.notna() & ~direction.isin(DIRECTIONS)).to_numpy(dtype=bool),
        "interval_invalid": ~interval_ok,
        "timestamp_misaligned": misaligned,
        "timestamp_in_future": future,
        "timestamp_implausible": _too_early(df["reading_start"], cfg),
        "energy_implausible": implausible,
    }
    contract = contract_for("meter_readings")
    masks.update(_duplicates(df, contract.columns, list(contract.key)))
    usable = ~(negative | implausible | masks["duplicate_exact"] | masks["duplicate_conflict"])
    meter_codes = pd.factorize(df["meter_id"])[0]  # once: grouping by the texts costs a third of the rules
    masks["spike"] = _spikes(meter_codes, energy, usable, cfg)
    masks["zero_run"] = _zero_runs(meter_codes, start_us, step_us, energy, usable, cfg.zero_run_length)
    low = cfg.meter_nominal_voltage_v * (1 - cfg.voltage_tolerance)
    high = cfg.meter_nominal_voltage_v * (1 + cfg.voltage_tolerance)
    volt_implausible = _outside(df["voltage_v"], 0.0, cfg.meter_voltage_max_v)
    masks["voltage_implausible"] = volt_implausible
    masks["voltage_out_of_range"] = _outside(df["voltage_v"], low, high) & ~volt_implausible
    pf_implausible = _outside(df["power_factor"], -1.0, 1.0)
    masks["power_factor_implausible"] = pf_implausible
    pf_low = _outside(df["power_factor"].abs(), cfg.power_factor_min_abs, 1.0)
    masks["power_factor_out_of_range"] = pf_low & ~pf_implausible
    return masks


def _spikes(meter_codes: np.ndarray, energy: np.ndarray, usable: np.ndarray, cfg: RuleConfig) -> np.ndarray:
    """Energy far above the meter's median in this batch (median over its usable readings)."""
    basis = pd.Series(np.where(usable, energy, np.nan))
    median = basis.groupby(meter_codes, sort=False).transform("median").to_numpy(copy=True)
    median[meter_codes < 0] = np.nan  # no meter, no median to exceed
    with np.errstate(invalid="ignore"):
        return usable & (energy > cfg.spike_factor * median) & (energy > cfg.spike_floor_kwh)


def _zero_runs(
    meter_codes: np.ndarray,
    start_us: np.ndarray,
    step_us: np.ndarray,
    energy: np.ndarray,
    usable: np.ndarray,
    min_length: int,
) -> np.ndarray:
    """Zero readings in a run of >= min_length back-to-back intervals of one meter (time order)."""
    order = np.lexsort((start_us, meter_codes))
    order = order[usable[order]]
    m, s, step = meter_codes[order], start_us[order], step_us[order]
    zero = energy[order] == 0
    contiguous = np.zeros(len(order), dtype=bool)
    contiguous[1:] = (m[1:] == m[:-1]) & (s[1:] == s[:-1] + step[:-1]) & (zero[1:] == zero[:-1])
    run_id = np.cumsum(~contiguous)
    run_len = np.bincount(run_id)[run_id] if len(run_id) else run_id
    result = np.zeros(len(energy), dtype=bool)
    result[order] = zero & (run_len >= min_length)
    return result


def _grid_masks(df: pd.DataFrame, now: pd.Timestamp, cfg: RuleConfig) -> dict[str, np.ndarray]:
    nominal = cfg.grid_nominal_hz
    freq_implausible = _outside(
        df["frequency_hz"], nominal - cfg.frequency_plausible_hz, nominal + cfg.frequency_plausible_hz
    )
    freq_out = _outside(
        df["frequency_hz"], nominal - cfg.frequency_statutory_hz, nominal + cfg.frequency_statutory_hz
    )
    v_nominal = cfg.grid_nominal_voltage_v
    load = df["load_mw"].to_numpy(dtype="float64", na_value=np.nan)
    capacity = df["capacity_mw"].to_numpy(dtype="float64", na_value=np.nan)
    with np.errstate(invalid="ignore"):
        load_bad = ~np.isnan(capacity) & ((capacity <= 0) | (load < -capacity))
    contract = contract_for("grid_status")
    grid_voltage_implausible = _outside(df["voltage_v"], 0.0, np.inf)
    return {
        "frequency_implausible": freq_implausible,
        "voltage_implausible": grid_voltage_implausible,
        "frequency_out_of_range": freq_out & ~freq_implausible,
        "voltage_out_of_range": _outside(
            df["voltage_v"], v_nominal * (1 - cfg.voltage_tolerance), v_nominal * (1 + cfg.voltage_tolerance)
        )
        & ~grid_voltage_implausible,
        "load_negative_implausible": load_bad,
        "timestamp_in_future": _future(df["measured_at"], now, _tolerance_us(cfg)),
        "timestamp_implausible": _too_early(df["measured_at"], cfg),
        **_duplicates(df, contract.columns, list(contract.key)),
    }


def _weather_masks(df: pd.DataFrame, now: pd.Timestamp, cfg: RuleConfig) -> dict[str, np.ndarray]:
    contract = contract_for("weather_observations")
    return {
        "temperature_implausible": _outside(df["temperature_c"], *cfg.temperature_c),
        "humidity_implausible": _outside(df["humidity_pct"], *cfg.humidity_pct),
        "pressure_implausible": _outside(df["pressure_hpa"], *cfg.pressure_hpa),
        "wind_implausible": _outside(df["wind_speed_ms"], *cfg.wind_speed_ms),
        "precipitation_implausible": _outside(df["precipitation_mm"], 0.0, np.inf),
        "timestamp_in_future": _future(df["observed_at"], now, _tolerance_us(cfg)),
        "timestamp_implausible": _too_early(df["observed_at"], cfg),
        **_duplicates(df, contract.columns, list(contract.key)),
    }


_MASKS = {"meter_readings": _meter_masks, "grid_status": _grid_masks, "weather_observations": _weather_masks}


def evaluate(
    source: str, df: pd.DataFrame, now: pd.Timestamp, config: RuleConfig | None = None
) -> RuleOutcome:
    """Apply the source's rules to a decoded batch; `now` bounds how far in the future a record may be."""
    contract_for(source)  # raises on an unknown source
    cfg = config or RuleConfig()
    masks = pd.DataFrame(
        {code: np.asarray(mask, dtype=bool) for code, mask in _MASKS[source](df, now, cfg).items()},
        index=df.index,
    )
    values = masks.to_numpy()
    codes = np.array(masks.columns)
    is_reject = np.array([REASONS[c].decision == "reject" for c in codes])
    rejected = values[:, is_reject].any(axis=1)
    flagged = values[:, ~is_reject].any(axis=1)
    decision = pd.Series(
        pd.Categorical.from_codes(
            np.where(rejected, 2, np.where(flagged, 1, 0)), dtype=pd.CategoricalDtype(list(DECISIONS))
        ),
        index=df.index,
        name="decision",
    )
    # One text per distinct combination of reasons, for the records that have any (a few per
    # batch), taken into an Arrow column: a text per record and code, or a column built from
    # Python strings, cost a third of the rules' time.
    which = np.zeros(len(df), dtype=np.int32)  # 0: the empty text
    texts = [""]
    rows = np.flatnonzero(rejected | flagged)
    if len(rows):
        patterns, inverse = np.unique(values[rows], axis=0, return_inverse=True)
        texts += [",".join(codes[p]) for p in patterns]
        which[rows] = inverse.reshape(-1) + 1
    column = pa.array(texts, type=pa.large_string()).take(pa.array(which))
    reasons = pd.Series(pd.arrays.ArrowStringArray(column), index=df.index, name="reasons")
    return RuleOutcome(source=source, decision=decision, reasons=reasons, masks=masks)
