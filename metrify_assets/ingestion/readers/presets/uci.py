"""Preset `uci-household`: the UCI household file's minutes as 15-minute meter readings."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from metrify_assets.contracts import iso_with_offset
from metrify_assets.ingestion.preset_names import UCI_PRESET
from metrify_assets.ingestion.readers.csvfile import read_csv
from metrify_assets.ingestion.readers.mapping import as_numbers
from metrify_assets.ingestion.readers.result import IngestResult, Rows, as_rows

UCI_TIMEZONE = "Europe/Paris"  # the household is in Sceaux, France
UCI_INTERVAL_MINUTES = 15
UCI_METER_ID = "UCI-HOUSEHOLD-1"


def read_uci_household(path: Path) -> Rows:
    """The UCI household file: `;`-separated, `?` for missing, date as d/m/Y; values as text."""
    return read_csv(path, sep=";")


UCI_COLUMNS = ("Date", "Time", "Global_active_power", "Global_reactive_power", "Voltage")
# voltage_v and power_factor are means over an interval's minutes: one needs at least 12 of the 15
# minutes (three quarters, rounded up), else the reading leaves it out rather than give the mean of
# a few minutes as the interval's.
UCI_MIN_MEAN_MINUTES = 12
TOO_FEW_MINUTES = "too_few_minutes"  # why a minute's value is left out: its interval has too few


def uci_household_readings(
    rows: Rows | pd.DataFrame, meter_id: str = UCI_METER_ID, timezone: str = UCI_TIMEZONE
) -> IngestResult:
    """1-minute UCI rows -> 15-minute meter readings.

    energy_kwh = sum over the bucket's minutes of Global_active_power (kW mean over a minute) / 60;
    voltage_v = mean Voltage; power_factor = P / sqrt(P^2 + Q^2) from the mean active and reactive
    power of the minutes with both. A bucket with missing minutes is still emitted (its energy
    covers only the minutes present) and flagged `partial_interval`; `notes` counts such buckets and
    the missing minutes. A minute row that is unusable, or repeats a minute already read, is skipped
    and counted under its reason (the readings are buckets, not rows, so there is no line to land it
    in): the rows read are the minutes of the energy plus the skipped ones.

    A minute of the energy without a voltage (or a reactive power) flags its bucket
    `partial_voltage` (`partial_power_factor`); a bucket with fewer than UCI_MIN_MEAN_MINUTES
    minutes that have one leaves voltage_v (power_factor) out. `notes` counts every minute of the
    energy left out of either, under `voltage_v: <reason>` (`power_factor: <reason>`), and the
    buckets without one.
    """
    rows = as_rows(rows)
    frame = rows.frame
    skipped = Counter(r.reason for r in rows.rejected)
    if frame.columns.empty:  # an empty file
        return IngestResult(lines=[], rows_read=rows.count, skipped=dict(skipped))
    absent = [c for c in UCI_COLUMNS if c not in frame.columns]
    if absent:
        raise ValueError(f"not a UCI household file: no column {', '.join(absent)}")
    local = pd.to_datetime(frame["Date"] + " " + frame["Time"], format="%d/%m/%Y %H:%M:%S", errors="coerce")
    placed = local.dt.tz_localize(timezone, ambiguous="NaT", nonexistent="NaT")
    power = as_numbers(frame["Global_active_power"])
    reasons = pd.Series(None, index=frame.index, dtype=object)
    reasons = reasons.where(local.notna(), "invalid_timestamp")
    reasons = reasons.where(reasons.notna() | placed.notna(), "ambiguous_or_nonexistent_local_time")
    reasons = reasons.where(reasons.notna(), _unusable(frame["Global_active_power"], power))
    repeated = placed.where(reasons.isna()).duplicated(keep="first") & reasons.isna()
    reasons = reasons.where(~repeated, "duplicate_minute")
    used = reasons.isna()  # the minutes of the energy

    voltage = as_numbers(frame["Voltage"])
    reactive = as_numbers(frame["Global_reactive_power"])
    timed = placed.notna()
    minutes = pd.DataFrame(
        {
            "bucket": placed[timed].dt.tz_convert("UTC").dt.floor(f"{UCI_INTERVAL_MINUTES}min"),
            "power": power.where(used)[timed],
            "voltage": voltage.where(used)[timed],
            "reactive": reactive.where(used)[timed],
            "active": power.where(used & reactive.notna())[timed],  # P of the minutes with a Q
        }
    )
    buckets = minutes.groupby("bucket", sort=True).agg(
        energy=("power", lambda kw: kw.sum() / 60.0),
        present=("power", "count"),
        voltage=("voltage", "mean"),
        voltage_minutes=("voltage", "count"),
        active=("active", "mean"),
        reactive=("reactive", "mean"),
        reactive_minutes=("reactive", "count"),
    )
    empty = buckets["present"] == 0
    buckets = buckets[~empty]
    starts = iso_with_offset(pd.DatetimeIndex(buckets.index).tz_convert(timezone))
    apparent = np.hypot(buckets["active"], buckets["reactive"])
    power_factor: pd.Series = (buckets["active"] / apparent).where(apparent > 0)
    with_voltage = buckets["voltage_minutes"] >= UCI_MIN_MEAN_MINUTES
    with_power_factor = buckets["reactive_minutes"] >= UCI_MIN_MEAN_MINUTES
    lines = []
    for start, energy, present, voltage_v, voltage_minutes, pf, reactive_minutes in zip(
        starts,
        buckets["energy"].tolist(),
        buckets["present"].tolist(),
        buckets["voltage"].where(with_voltage).tolist(),
        buckets["voltage_minutes"].tolist(),
        power_factor.where(with_power_factor).tolist(),
        buckets["reactive_minutes"].tolist(),
        strict=True,
    ):
        record: dict[str, object] = {
            "meter_id": meter_id,
            "reading_start": start,
            "interval_minutes": UCI_INTERVAL_MINUTES,
            "energy_kwh": float(energy),
        }
        if not math.isnan(voltage_v):
            record["voltage_v"] = round(voltage_v, 3)
        if not math.isnan(pf):
            record["power_factor"] = round(pf, 4)
        record["status_flags"] = [
            flag
            for flag, partial in (
                ("partial_interval", present < UCI_INTERVAL_MINUTES),
                ("partial_voltage", voltage_minutes < present),
                ("partial_power_factor", reactive_minutes < present),
            )
            if partial
        ]
        record["source"] = UCI_PRESET
        lines.append(json.dumps(record))
    partial = buckets["present"] < UCI_INTERVAL_MINUTES
    notes = {
        "partial_intervals": int(partial.sum()),
        "missing_minutes": int((UCI_INTERVAL_MINUTES - buckets["present"][partial]).sum()),
        "intervals_without_data": int(empty.sum()),
    }
    for field, column, numbers, given, counted in (
        ("voltage_v", "Voltage", voltage, with_voltage, "voltage_minutes"),
        ("power_factor", "Global_reactive_power", reactive, with_power_factor, "reactive_minutes"),
    ):
        left_out = Counter(_unusable(frame[column], numbers)[used].dropna())
        left_out[TOO_FEW_MINUTES] = int(buckets[counted][~given].sum())
        notes.update({f"{field}: {reason}": n for reason, n in sorted(left_out.items()) if n})
        if not given.all():
            notes[f"intervals_without_{field}"] = int((~given).sum())
    skipped.update(str(r) for r in reasons.dropna())
    return IngestResult(lines=lines, rows_read=rows.count, skipped=dict(sorted(skipped.items())), notes=notes)


def _unusable(given: pd.Series, numbers: pd.Series) -> pd.Series:
    """Per row, why a column's value is no number: `missing_<column>` (`?`, empty or blank) or
    `invalid_<column>` (other text); None where `numbers` (the values as numbers) has one."""
    blank = given[numbers.isna() & given.notna()].astype(str).str.strip().isin(["", "?"])
    missing = given.isna() | blank.reindex(given.index, fill_value=False)
    reasons = pd.Series(None, index=given.index, dtype=object)
    reasons = reasons.where(numbers.notna(), f"invalid_{given.name}")
    return reasons.where(~missing, f"missing_{given.name}")
