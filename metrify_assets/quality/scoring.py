"""Quality score (0..100) per batch and per meter-day from four dimensions in [0, 1].

completeness: on-grid intervals received / intervals expected (counted in UTC instants, so a
23-hour or 25-hour DST day expects 92 or 100 quarter-hours); accuracy: 1 - share of records rejected
for value reasons (malformed records count as such); consistency: 1 - share of exact and conflicting
duplicates; timeliness: share of live records ingested within `max_lag_minutes` of the end of their
interval, which is when live data is expected. Records of a declared backfill (a landing file or
Kafka message marked as history) are not late by definition: timeliness covers live records only,
and a batch with none has no timeliness (None) and scores on the other three dimensions, their
weights rescaled. The score is the weighted mean x 100. Definitions are documented in docs/quality.md.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from metrify_assets.contracts import contract_for
from metrify_assets.quality.rules import RuleOutcome

DIMENSIONS = ("completeness", "accuracy", "consistency", "timeliness")
# Rejections meaning a record holds no slot on its interval grid (so it does not count as received).
OFF_GRID_REASONS = (
    "interval_invalid",
    "timestamp_misaligned",
    "timestamp_in_future",
    "timestamp_implausible",
)
_US_PER_MINUTE = 60_000_000


@dataclass(frozen=True)
class ScoreWeights:
    completeness: float = 0.4
    accuracy: float = 0.3
    consistency: float = 0.2
    timeliness: float = 0.1

    def normalised(self) -> dict[str, float]:
        """Weights scaled to sum to 1, so any positive weights give a 0..100 score."""
        weights = asdict(self)
        total = sum(weights.values())
        if total <= 0 or min(weights.values()) < 0:
            raise ValueError(f"weights must be >= 0 with a positive sum, got {weights}")
        return {k: v / total for k, v in weights.items()}


@dataclass(frozen=True)
class ScoringConfig:
    weights: ScoreWeights = field(default_factory=ScoreWeights)
    max_lag_minutes: int = 60  # ingested later than this after the interval's end counts as late
    timezone: str = "Europe/London"  # whose calendar day a meter-day is


@dataclass(frozen=True)
class QualityScore:
    records: int  # decoded records plus malformed ones
    completeness: float
    accuracy: float
    consistency: float
    timeliness: float | None  # None: no live record (a declared backfill), so nothing could be late
    score: float  # 0..100
    backfill: int = 0  # records of a declared backfill (not scored for timeliness)

    def dimensions(self) -> dict[str, float]:
        """The dimensions that were scored (timeliness is absent for a backfill)."""
        values = {d: getattr(self, d) for d in DIMENSIONS}
        return {d: float(v) for d, v in values.items() if v is not None}


def batch_quality(
    source: str,
    df: pd.DataFrame,
    outcome: RuleOutcome,
    ingested_at: pd.Timestamp | pd.Series,
    config: ScoringConfig | None = None,
    malformed: int = 0,
    backfill: bool | pd.Series = False,
) -> QualityScore:
    """Score one batch. Expected intervals span each entity's first to last on-grid timestamp.

    Grid and weather records carry no interval, so their cadence is the entity's median spacing.
    `backfill` (for the batch, or per record) declares history: those records are not scored for
    timeliness. An empty batch (nothing decodable) scores 0 on every dimension, timeliness included
    unless the batch was declared history (`backfill=True`): then it has no timeliness (None), as a
    decodable backfill has none, so it is still told apart from the live feed.
    """
    cfg = config or ScoringConfig()
    records = _records(source, df, outcome, ingested_at, cfg, backfill)
    total = len(records) + malformed
    if total == 0 or records.empty:
        # Per record, an empty batch says nothing: the caller passes the batch's declaration instead.
        if isinstance(backfill, pd.Series):
            declared = not backfill.empty and bool(backfill.all())
        else:
            declared = bool(backfill)
        return QualityScore(total, 0.0, 0.0, 0.0, None if declared else 0.0, 0.0)
    grid = records[records["on_grid"] & records["step"].gt(0)]
    per_entity = grid.groupby("entity", sort=False).agg(
        first=("t", "min"), last=("t", "max"), step=("step", "median"), received=("t", "nunique")
    )
    expected = ((per_entity["last"] - per_entity["first"]) / per_entity["step"]).round() + 1
    timely = records["timely"].mean()  # NaN: every record is backfill
    dims = {
        "completeness": min(1.0, per_entity["received"].sum() / expected.sum()) if len(grid) else 0.0,
        "accuracy": 1.0 - (records["value_rejected"].sum() + malformed) / total,
        "consistency": 1.0 - records["duplicate"].sum() / len(records),
        "timeliness": float(timely),
    }
    score = float(_scores(np.array([[dims[d] for d in DIMENSIONS]]), cfg)[0])
    backfilled = int(records["timely"].isna().sum())
    return QualityScore(
        records=total,
        completeness=dims["completeness"],
        accuracy=dims["accuracy"],
        consistency=dims["consistency"],
        timeliness=None if np.isnan(timely) else dims["timeliness"],
        score=score,
        backfill=backfilled,
    )


def meter_day_quality(
    df: pd.DataFrame,
    outcome: RuleOutcome,
    ingested_at: pd.Timestamp | pd.Series,
    config: ScoringConfig | None = None,
) -> pd.DataFrame:
    """Score each meter's local calendar day of meter readings.

    Returns one row per (meter_id, local_date) with records, expected_intervals,
    received_intervals, the four dimensions and score. Expected intervals = length of the local day
    in UTC minutes / the meter-day's median interval, so DST days expect 92 or 100 quarter-hours.
    """
    cfg = config or ScoringConfig()
    records = _records("meter_readings", df, outcome, ingested_at, cfg)
    local = records["time"].dt.tz_convert(cfg.timezone)
    records["local_date"] = local.dt.tz_localize(None).dt.normalize()
    records["slot"] = records["t"].where(records["on_grid"])  # NaN: occupies no slot
    records["grid_step"] = records["step"].where(records["on_grid"])
    days = records.groupby(["entity", "local_date"], sort=True).agg(
        records=("t", "size"),
        received_intervals=("slot", "nunique"),
        step=("grid_step", "median"),
        value_rejected=("value_rejected", "sum"),
        duplicate=("duplicate", "sum"),
        timeliness=("timely", "mean"),
    )
    day_us = _local_day_length_us(days.index.get_level_values("local_date"), cfg.timezone)
    expected = pd.Series(day_us / days["step"].to_numpy(), index=days.index).round()
    days["expected_intervals"] = expected.astype("Int64")  # <NA>: no on-grid reading that day
    days["completeness"] = (days["received_intervals"] / expected).clip(upper=1.0).fillna(0.0)
    days["accuracy"] = 1.0 - days["value_rejected"] / days["records"]
    days["consistency"] = 1.0 - days["duplicate"] / days["records"]
    days["timeliness"] = days["timeliness"].astype("float64")
    days["score"] = _scores(days[list(DIMENSIONS)].to_numpy(dtype="float64"), cfg)
    out = days.reset_index().rename(columns={"entity": "meter_id"})
    out["local_date"] = out["local_date"].dt.date
    columns = ["meter_id", "local_date", "records", "expected_intervals", "received_intervals"]
    return out[[*columns, *DIMENSIONS, "score"]]


def _scores(dimensions: np.ndarray, config: ScoringConfig) -> np.ndarray:
    """Weighted score 0..100 of rows of dimension values (columns in DIMENSIONS order).

    A NaN dimension (timeliness of a backfill) is left out and the other weights rescaled to sum 1.
    """
    weights = config.weights.normalised()
    w = np.array([weights[d] for d in DIMENSIONS])
    present = ~np.isnan(dimensions)
    weight_sum = (present * w).sum(axis=1)
    weighted = (np.where(present, dimensions, 0.0) * w).sum(axis=1)
    return 100.0 * np.divide(weighted, weight_sum, out=np.zeros_like(weighted), where=weight_sum > 0)


def meter_day_completeness(readings: pd.DataFrame, vee_days: pd.DataFrame | None = None) -> pd.DataFrame:
    """Completeness of stored readings per meter and local day, each meter on its own timezone.

    `readings`: meter_id, reading_start (UTC), interval_minutes, timezone. `vee_days`: meter_id,
    local_date, expected_minutes (`ops.vee_days`' expected_intervals x interval_minutes): the minutes
    VEE expects of each meter-day, from the meter's first reading's interval on its first day
    (docs/quality.md), one rule for VEE, the marts and this count. Returns meter_id, local_date,
    received (distinct intervals), expected (VEE's minutes, or where VEE has no summary of the day the
    local day's length, in the day's shortest interval: DST days expect 92 or 100 quarter-hours) and
    completeness (received / expected, at most 1): what arrived. The warehouse's
    `fct_consumption_daily.actual_intervals / expected_intervals` is the VEE series' counterpart (its
    `completeness` counts estimates too).
    """
    columns = ["meter_id", "local_date", "received", "expected", "completeness"]
    if readings.empty:
        return pd.DataFrame(columns=columns)
    parts = []
    for timezone, group in readings.groupby("timezone", sort=True):
        local = pd.to_datetime(group["reading_start"], utc=True).dt.tz_convert(str(timezone))
        frame = pd.DataFrame(
            {
                "meter_id": group["meter_id"].to_numpy(),
                "local_date": local.dt.tz_localize(None).dt.normalize().to_numpy(),
                "reading_start": group["reading_start"].to_numpy(),
                "interval_minutes": group["interval_minutes"].astype("int64").to_numpy(),
            }
        )
        days = frame.groupby(["meter_id", "local_date"], sort=True).agg(
            received=("reading_start", "nunique"), interval_minutes=("interval_minutes", "min")
        )
        days["day_us"] = _local_day_length_us(days.index.get_level_values("local_date"), str(timezone))
        parts.append(days.reset_index())
    out = pd.concat(parts, ignore_index=True)
    out["local_date"] = out["local_date"].dt.date
    minutes = out["day_us"] / _US_PER_MINUTE
    if vee_days is not None and len(vee_days):
        vee = vee_days.assign(local_date=pd.to_datetime(vee_days["local_date"]).dt.date)
        expected = out.merge(vee, on=["meter_id", "local_date"], how="left")["expected_minutes"]
        minutes = expected.astype("float64").fillna(minutes)
    out["expected"] = np.round(minutes / out["interval_minutes"])
    out["completeness"] = (out["received"] / out["expected"]).clip(upper=1.0)
    return out[columns]


def _local_day_length_us(local_dates: pd.Index, timezone: str) -> np.ndarray:
    """Microseconds from local midnight to the next local midnight (UTC instants, DST-aware)."""
    start = pd.DatetimeIndex(local_dates).tz_localize(timezone, nonexistent="shift_forward", ambiguous=True)
    end = (pd.DatetimeIndex(local_dates) + pd.Timedelta(days=1)).tz_localize(
        timezone, nonexistent="shift_forward", ambiguous=True
    )
    return ((end - start) / pd.Timedelta(microseconds=1)).to_numpy(dtype="float64")


def _records(
    source: str,
    df: pd.DataFrame,
    outcome: RuleOutcome,
    ingested_at: pd.Timestamp | pd.Series,
    config: ScoringConfig,
    backfill: bool | pd.Series = False,
) -> pd.DataFrame:
    """Per record: entity, UTC time, cadence, grid slot, and the dimension indicators
    (`timely` is NaN for a backfill record: it has no deadline to meet)."""
    contract = contract_for(source)
    times = df[contract.time_field].dt.tz_convert("UTC")
    times_us = times.dt.as_unit("us").astype("int64").to_numpy()
    entity = df[contract.key[0]].astype("string")
    step = _step_us(source, df, entity, times_us)
    off_grid = outcome.masks.reindex(columns=list(OFF_GRID_REASONS), fill_value=False).any(axis=1)
    ingested = ingested_at if isinstance(ingested_at, pd.Series) else pd.Series(ingested_at, index=df.index)
    ingested_us = pd.to_datetime(ingested, utc=True).dt.as_unit("us").astype("int64").to_numpy()
    # A meter reading is complete at the end of its interval; other records at their timestamp.
    end_us = times_us + (np.nan_to_num(step) if source == "meter_readings" else 0)
    timely = (ingested_us - end_us <= config.max_lag_minutes * _US_PER_MINUTE).astype("float64")
    history = backfill.to_numpy(dtype=bool) if isinstance(backfill, pd.Series) else np.full(len(df), backfill)
    return pd.DataFrame(
        {
            "entity": entity.to_numpy(),
            "time": times.reset_index(drop=True),
            "t": times_us,
            "step": step,
            "on_grid": ~off_grid.to_numpy(dtype=bool),
            "value_rejected": outcome.has_category("value").to_numpy(dtype=bool),
            "duplicate": outcome.has_category("duplicate").to_numpy(dtype=bool),
            "timely": np.where(history, np.nan, timely),
        }
    )


def _step_us(source: str, df: pd.DataFrame, entity: pd.Series, times_us: np.ndarray) -> np.ndarray:
    """Each record's cadence in microseconds: its interval for meters, else its entity's median spacing."""
    if source == "meter_readings":
        return df["interval_minutes"].to_numpy(dtype="float64", na_value=np.nan) * _US_PER_MINUTE
    spacing = pd.DataFrame({"entity": entity.to_numpy(), "t": times_us}).drop_duplicates()
    spacing = spacing.sort_values(["entity", "t"])
    spacing["gap"] = spacing.groupby("entity", sort=False)["t"].diff()
    cadence = spacing[spacing["gap"] > 0].groupby("entity")["gap"].median()
    return entity.map(cadence).to_numpy(dtype="float64", na_value=np.nan)
