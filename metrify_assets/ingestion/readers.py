"""Turning tabular files (CSV, JSON Lines, Parquet) into contract v1 message lines.

Pure functions: they read a file, map its columns onto a source's contract fields, and return the
message lines with counts of rows read and skipped (by reason), so `metrify ingest` only wires them
to the landing directory. Records keep their values as given; the pipeline's record rules judge them.
docs/ingest-mapping.md describes the mapping and the presets' arithmetic (`uci-household`, `openstef`).
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from metrify_assets.contracts import (
    METER_READINGS,
    WEATHER_OBSERVATIONS,
    Field,
    contract_for,
    iso_with_offset,
)

FORMATS = {
    ".csv": "csv",
    ".txt": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
UCI_PRESET = "uci-household"
OPENSTEF_PRESET = "openstef"
PRESETS = (UCI_PRESET, OPENSTEF_PRESET)
UCI_TIMEZONE = "Europe/Paris"  # the household is in Sceaux, France
UCI_INTERVAL_MINUTES = 15
UCI_METER_ID = "UCI-HOUSEHOLD-1"
# OpenSTEF's input layout: a UTC timestamp in the first column, then `load` (MW, net of feed-in) and
# weather features at 15 minutes. The ids default to the location of the fixture (tests/fixtures).
OPENSTEF_INTERVAL_MINUTES = 15
OPENSTEF_METER_ID = "OPENSTEF-307"
OPENSTEF_STATION_ID = "OPENSTEF-307"
KWH_PER_MW_QUARTER_HOUR = 1000.0 * OPENSTEF_INTERVAL_MINUTES / 60.0  # 1 MW for 15 min = 250 kWh
# OpenSTEF column -> (weather contract field, factor to the contract's unit).
OPENSTEF_WEATHER = {
    "temp": ("temperature_c", 1.0),  # degC
    "humidity": ("humidity_pct", 100.0),  # fraction -> %
    "pressure": ("pressure_hpa", 0.01),  # Pa -> hPa
    "windspeed": ("wind_speed_ms", 1.0),  # m/s (10 m; `windspeed_100m` is at hub height)
    # mm/h (hourly model values interpolated to 15 minutes) -> mm in the 15-minute interval
    "rain": ("precipitation_mm", OPENSTEF_INTERVAL_MINUTES / 60.0),
}
_OFFSET = re.compile(r"(?:Z|[+-]\d{2}:?\d{2})$")


@dataclass(frozen=True)
class IngestResult:
    """Message lines (one record each) and what happened to the input rows."""

    lines: list[str]
    rows_read: int
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> rows
    notes: dict[str, int] = field(default_factory=dict)  # facts worth knowing, e.g. partial intervals

    @property
    def records(self) -> int:
        return len(self.lines)


def detect_format(path: Path) -> str:
    try:
        return FORMATS[path.suffix.lower()]
    except KeyError:
        raise ValueError(f"cannot tell the format of {path.name}; pass --format csv|jsonl|parquet") from None


def parse_pairs(pairs: Sequence[str]) -> dict[str, str]:
    """`["target=value", ...]` as a dict (for --map and --set)."""
    parsed: dict[str, str] = {}
    for pair in pairs:
        target, sep, value = pair.partition("=")
        if not sep or not target.strip():
            raise ValueError(f"expected TARGET=VALUE, got {pair!r}")
        parsed[target.strip()] = value.strip()
    return parsed


def read_table(path: Path, fmt: str | None = None) -> pd.DataFrame:
    """A file as a DataFrame; values of text formats stay strings so mapping decides their types."""
    fmt = fmt or detect_format(path)
    if fmt == "csv":
        return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    if fmt == "jsonl":
        return pd.read_json(path, lines=True, dtype=False)
    if fmt == "parquet":
        return pd.read_parquet(path)
    raise ValueError(f"unknown format {fmt!r}; expected csv, jsonl or parquet")


def _timestamps(values: pd.Series, timezone: str | None) -> tuple[pd.Series, pd.Series]:
    """(UTC timestamps, mask of valid naive values that no timezone could place)."""
    if pd.api.types.is_datetime64_any_dtype(values):
        stamps = pd.Series(values)
        if stamps.dt.tz is not None:
            return stamps.dt.tz_convert("UTC"), pd.Series(False, index=values.index)
        if timezone is None:
            return pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns, UTC]"), stamps.notna()
        local = stamps.dt.tz_localize(timezone, ambiguous="NaT", nonexistent="NaT")
        return local.dt.tz_convert("UTC"), pd.Series(False, index=values.index)
    text = values.astype("string").str.strip()
    aware = text.str.contains(_OFFSET, na=False)
    result = pd.to_datetime(text.where(aware), errors="coerce", utc=True, format="ISO8601")
    local = pd.to_datetime(text.where(~aware), errors="coerce", format="ISO8601")
    if timezone is None:
        return result, local.notna()
    placed = local.dt.tz_localize(timezone, ambiguous="NaT", nonexistent="NaT").dt.tz_convert("UTC")
    return result.where(aware, placed), pd.Series(False, index=values.index)


def _flags(value: object) -> list[str] | None:
    if isinstance(value, list | tuple | np.ndarray):
        return [str(v) for v in value]
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return None
    return [part.strip() for part in re.split(r"[,|]", str(value)) if part.strip()]


Problems = list[tuple[str, pd.Series]]  # (reason prefix, mask of rows that have it)


def _typed(f: Field, raw: pd.Series, timezone: str | None) -> tuple[list[Any], pd.Series, Problems]:
    """(Python values with None for missing, mask of missing, problems) for one field."""
    missing = raw.isna()
    if f.type == "str":
        values = raw.astype("string").str.strip()
        return values.astype(object).where(values.notna(), None).tolist(), missing, []
    if f.type == "str_list":
        return [_flags(v) for v in raw.astype(object)], missing, []
    if f.type == "timestamp":
        stamps, naive = _timestamps(raw, timezone)
        bad = ~missing & stamps.isna() & ~naive
        iso = iso_with_offset(pd.DatetimeIndex(stamps.dropna()).tz_convert(timezone or "UTC"))
        out: list[Any] = [None] * len(raw)
        for position, text in zip(np.flatnonzero(stamps.notna().to_numpy()), iso, strict=True):
            out[position] = text
        return out, missing, [("invalid", bad), ("no_offset_in", naive)]
    numbers = pd.to_numeric(raw, errors="coerce")
    bad = ~missing & numbers.isna()
    if f.type == "int":
        fractional = numbers.notna() & (numbers % 1 != 0)
        bad |= fractional
        numbers = numbers.where(~fractional)
        return [None if pd.isna(v) else int(v) for v in numbers], missing, [("invalid", bad)]
    return [None if pd.isna(v) else float(v) for v in numbers], missing, [("invalid", bad)]


def map_records(
    frame: pd.DataFrame,
    source: str,
    mapping: Mapping[str, str] | None = None,
    constants: Mapping[str, str] | None = None,
    timezone: str | None = None,
) -> IngestResult:
    """Map columns to `source`'s contract fields (a field reads the column of its own name unless
    `mapping` names another; `constants` fill fields for every row) and build message lines.

    Naive timestamps are local time in `timezone`; without one they are skipped, since guessing UTC
    would shift readings silently (`no_offset_in_<field>`). A row is skipped with its first reason:
    `missing_<field>` for an empty required field, `invalid_<field>` for a value that does not parse
    as the field's type (or a local time that does not exist or is ambiguous).
    """
    contract = contract_for(source)
    mapping, constants = dict(mapping or {}), dict(constants or {})
    unknown = (set(mapping) | set(constants)) - set(contract.columns)
    if unknown:
        raise ValueError(f"not fields of {source}: {', '.join(sorted(unknown))}")
    absent = sorted(col for col in mapping.values() if col not in frame.columns)
    if absent:
        raise ValueError(f"columns not in the file: {', '.join(absent)}")
    columns: dict[str, pd.Series] = {}
    for f in contract.fields:
        column = mapping.get(f.name, f.name)
        if column in frame.columns:
            columns[f.name] = frame[column]
        elif f.name in constants:
            columns[f.name] = pd.Series(constants[f.name], index=frame.index, dtype=object)
        elif f.required:
            raise ValueError(f"no column for required field {f.name!r}: use --map {f.name}=COLUMN or --set")

    reason = pd.Series(None, index=frame.index, dtype=object)
    values: dict[str, list[Any]] = {}
    for name, raw in columns.items():
        f = contract.field(name)
        values[name], missing, problems = _typed(f, raw, timezone)
        if f.required:
            reason = reason.where(reason.notna() | ~missing, f"missing_{name}")
        for prefix, mask in problems:
            reason = reason.where(reason.notna() | ~mask, f"{prefix}_{name}")

    keep = reason.isna().to_numpy()
    lines = [
        json.dumps({name: column[i] for name, column in values.items() if column[i] is not None})
        for i in np.flatnonzero(keep)
    ]
    skipped = Counter(str(r) for r in reason.dropna())
    return IngestResult(lines=lines, rows_read=len(frame), skipped=dict(sorted(skipped.items())))


def read_openstef(path: Path) -> pd.DataFrame:
    """An OpenSTEF input CSV: the first column (unnamed or `datetime`) is the timestamp, as text."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    return frame.rename(columns={frame.columns[0]: "datetime"})


def _openstef_rows(
    frame: pd.DataFrame, columns: Sequence[str], timezone: str | None
) -> tuple[pd.Series, pd.DataFrame, Counter[str]]:
    """(UTC timestamps, numeric columns, skip reasons) of the rows that have every column.

    OpenSTEF writes UTC with an offset; a timestamp without one is read as UTC too (OpenSTEF's
    convention), unless `timezone` names another zone.
    """
    absent = [c for c in columns if c not in frame.columns]
    if absent:
        raise ValueError(f"not an OpenSTEF file with {', '.join(columns)}: no column {', '.join(absent)}")
    text = frame["datetime"].astype("string").str.strip()
    aware = text.str.contains(_OFFSET, na=False)
    stamps = pd.to_datetime(text.where(aware), errors="coerce", utc=True, format="ISO8601")
    naive = pd.to_datetime(text.where(~aware), errors="coerce", format="ISO8601")
    placed = naive.dt.tz_localize(timezone or "UTC", ambiguous="NaT", nonexistent="NaT").dt.tz_convert("UTC")
    stamps = stamps.where(aware, placed)
    values = pd.DataFrame({c: pd.to_numeric(frame[c], errors="coerce") for c in columns}, index=frame.index)
    reasons = pd.Series(None, index=frame.index, dtype=object)
    reasons = reasons.where(stamps.notna(), "invalid_datetime")
    for column in columns:
        reasons = reasons.where(reasons.notna() | frame[column].notna(), f"missing_{column}")
        reasons = reasons.where(reasons.notna() | values[column].notna(), f"invalid_{column}")
    keep = reasons.isna()
    return stamps[keep], values[keep], Counter(str(r) for r in reasons.dropna())


def openstef_readings(
    frame: pd.DataFrame, meter_id: str = OPENSTEF_METER_ID, timezone: str | None = None
) -> IngestResult:
    """OpenSTEF `load` (MW, taken as the mean over the quarter-hour that starts at the timestamp;
    negative = feed-in) ->
    15-minute meter readings: energy_kwh = |load| x 250 (MW x 0.25 h x 1000 kWh/MWh), direction
    `import` for load >= 0 and `export` below. Not rounded: the readings sum to the file's energy."""
    stamps, values, skipped = _openstef_rows(frame, ["load"], timezone)
    starts = iso_with_offset(pd.DatetimeIndex(stamps).tz_convert(timezone or "UTC"))
    lines = [
        json.dumps(
            {
                "meter_id": meter_id,
                "reading_start": start,
                "interval_minutes": OPENSTEF_INTERVAL_MINUTES,
                "energy_kwh": abs(mw) * KWH_PER_MW_QUARTER_HOUR,
                "direction": "export" if mw < 0 else "import",
                "source": OPENSTEF_PRESET,
            }
        )
        for start, mw in zip(starts, values["load"].tolist(), strict=True)
    ]
    notes = {"export_intervals": int((values["load"] < 0).sum())}
    return IngestResult(lines=lines, rows_read=len(frame), skipped=dict(sorted(skipped.items())), notes=notes)


def openstef_weather(
    frame: pd.DataFrame, station_id: str = OPENSTEF_STATION_ID, timezone: str | None = None
) -> IngestResult:
    """OpenSTEF weather columns -> observations of one station, converted to the contract's units
    (`OPENSTEF_WEATHER`): pressure Pa -> hPa, humidity fraction -> %, rain mm/h -> mm in the
    quarter-hour. The other columns (radiation, clouds, wind direction, ...) have no contract field."""
    stamps, values, skipped = _openstef_rows(frame, list(OPENSTEF_WEATHER), timezone)
    stamped = iso_with_offset(pd.DatetimeIndex(stamps).tz_convert(timezone or "UTC"))
    converted = {
        field: (values[column] * factor).tolist() for column, (field, factor) in OPENSTEF_WEATHER.items()
    }
    lines = [
        json.dumps(
            {"station_id": station_id, "observed_at": observed_at}
            | {field: converted[field][i] for field in converted}
        )
        for i, observed_at in enumerate(stamped)
    ]
    return IngestResult(lines=lines, rows_read=len(frame), skipped=dict(sorted(skipped.items())))


def read_uci_household(path: Path) -> pd.DataFrame:
    """The UCI household file: `;`-separated, `?` for missing, date as d/m/Y."""
    return pd.read_csv(path, sep=";", na_values=["?"], dtype={"Date": str, "Time": str})


def uci_household_readings(
    frame: pd.DataFrame, meter_id: str = UCI_METER_ID, timezone: str = UCI_TIMEZONE
) -> IngestResult:
    """1-minute UCI rows -> 15-minute meter readings.

    energy_kwh = sum over the bucket's minutes of Global_active_power (kW mean over a minute) / 60;
    voltage_v = mean Voltage; power_factor = P / sqrt(P^2 + Q^2) from the mean active and reactive
    power. A bucket with missing minutes is still emitted (its energy covers only the minutes
    present) and flagged `partial_interval`; `notes` counts such buckets and the missing minutes.
    """
    local = pd.to_datetime(frame["Date"] + " " + frame["Time"], format="%d/%m/%Y %H:%M:%S", errors="coerce")
    placed = local.dt.tz_localize(timezone, ambiguous="NaT", nonexistent="NaT")
    power = pd.to_numeric(frame["Global_active_power"], errors="coerce")
    reasons = pd.Series(None, index=frame.index, dtype=object)
    reasons = reasons.where(local.notna(), "invalid_timestamp")
    reasons = reasons.where(reasons.notna() | placed.notna(), "ambiguous_or_nonexistent_local_time")
    reasons = reasons.where(reasons.notna() | power.notna(), "missing_Global_active_power")

    timed = placed.notna()
    minutes = pd.DataFrame(
        {
            "bucket": placed[timed].dt.tz_convert("UTC").dt.floor(f"{UCI_INTERVAL_MINUTES}min"),
            "power": power[timed],
            "reactive": pd.to_numeric(frame["Global_reactive_power"], errors="coerce")[timed],
            "voltage": pd.to_numeric(frame["Voltage"], errors="coerce")[timed],
        }
    )
    buckets = minutes.groupby("bucket", sort=True).agg(
        energy=("power", lambda kw: kw.sum() / 60.0),
        present=("power", "count"),
        active=("power", "mean"),
        reactive=("reactive", "mean"),
        voltage=("voltage", "mean"),
    )
    empty = buckets["present"] == 0
    buckets = buckets[~empty]
    starts = iso_with_offset(pd.DatetimeIndex(buckets.index).tz_convert(timezone))
    apparent = np.hypot(buckets["active"], buckets["reactive"])
    power_factor: pd.Series = (buckets["active"] / apparent).where(apparent > 0)
    lines = []
    for start, energy, present, voltage, pf in zip(
        starts,
        buckets["energy"].tolist(),
        buckets["present"].tolist(),
        buckets["voltage"].tolist(),
        power_factor.tolist(),
        strict=True,
    ):
        record: dict[str, object] = {
            "meter_id": meter_id,
            "reading_start": start,
            "interval_minutes": UCI_INTERVAL_MINUTES,
            "energy_kwh": float(energy),
        }
        if not math.isnan(voltage):
            record["voltage_v"] = round(voltage, 3)
        if not math.isnan(pf):
            record["power_factor"] = round(pf, 4)
        record["status_flags"] = ["partial_interval"] if present < UCI_INTERVAL_MINUTES else []
        record["source"] = UCI_PRESET
        lines.append(json.dumps(record))
    partial = buckets["present"] < UCI_INTERVAL_MINUTES
    notes = {
        "partial_intervals": int(partial.sum()),
        "missing_minutes": int((UCI_INTERVAL_MINUTES - buckets["present"][partial]).sum()),
        "intervals_without_data": int(empty.sum()),
    }
    skipped = Counter(str(r) for r in reasons.dropna())
    return IngestResult(lines=lines, rows_read=len(frame), skipped=dict(sorted(skipped.items())), notes=notes)


def ingest_file(
    path: Path,
    source: str,
    fmt: str | None = None,
    mapping: Mapping[str, str] | None = None,
    constants: Mapping[str, str] | None = None,
    preset: str | None = None,
    meter_id: str | None = None,
    timezone: str | None = None,
    station_id: str | None = None,
) -> IngestResult:
    """Read `path` and return its records as message lines for `source` (a preset decides the layout).

    `uci-household` makes meter readings; `openstef` makes meter readings from `load` or weather
    observations from the weather columns, as `source` asks. `meter_id` / `station_id` default to the
    preset's own.
    """
    contract_for(source)
    if preset is None:
        return map_records(read_table(path, fmt), source, mapping, constants, timezone)
    if preset == UCI_PRESET:
        if source != METER_READINGS.source:
            raise ValueError(f"preset {preset} produces meter_readings, not {source}")
        return uci_household_readings(
            read_uci_household(path), meter_id or UCI_METER_ID, timezone or UCI_TIMEZONE
        )
    if preset == OPENSTEF_PRESET:
        if source == METER_READINGS.source:
            return openstef_readings(read_openstef(path), meter_id or OPENSTEF_METER_ID, timezone)
        if source == WEATHER_OBSERVATIONS.source:
            return openstef_weather(read_openstef(path), station_id or OPENSTEF_STATION_ID, timezone)
        raise ValueError(f"preset {preset} produces meter_readings or weather_observations, not {source}")
    raise ValueError(f"unknown preset {preset!r}; expected one of {', '.join(PRESETS)}")
