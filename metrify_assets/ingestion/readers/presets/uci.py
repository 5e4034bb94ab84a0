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


def uci_household_readings(
    rows: Rows | pd.DataFrame, meter_id: str = UCI_METER_ID, timezone: str = UCI_TIMEZONE
) -> IngestResult:
    """1-minute UCI rows -> 15-minute meter readings.

    energy_kwh = sum over the bucket's minutes of Global_active_power (kW mean over a minute) / 60;
    voltage_v = mean Voltage; power_factor = P / sqrt(P^2 + Q^2) from the mean active and reactive
    power. A bucket with missing minutes is still emitted (its energy covers only the minutes
    present) and flagged `partial_interval`; `notes` counts such buckets and the missing minutes.
    A minute row that is unusable, or repeats a minute already read, is skipped and counted under
    its reason (the readings are buckets, not rows, so there is no line to land it in).
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
    power = as_numbers(frame["Global_active_power"])  # `?` (missing) is not a number
    reasons = pd.Series(None, index=frame.index, dtype=object)
    reasons = reasons.where(local.notna(), "invalid_timestamp")
    reasons = reasons.where(reasons.notna() | placed.notna(), "ambiguous_or_nonexistent_local_time")
    given = frame["Global_active_power"].where(frame["Global_active_power"] != "?")
    reasons = reasons.where(reasons.notna() | given.notna(), "missing_Global_active_power")
    reasons = reasons.where(reasons.notna() | power.notna(), "invalid_Global_active_power")
    repeated = placed.where(reasons.isna()).duplicated(keep="first") & reasons.isna()
    reasons = reasons.where(~repeated, "duplicate_minute")
    power = power.where(~repeated)

    timed = placed.notna()
    minutes = pd.DataFrame(
        {
            "bucket": placed[timed].dt.tz_convert("UTC").dt.floor(f"{UCI_INTERVAL_MINUTES}min"),
            "power": power[timed],
            "reactive": as_numbers(frame["Global_reactive_power"]).where(~repeated)[timed],
            "voltage": as_numbers(frame["Voltage"]).where(~repeated)[timed],
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
    skipped.update(str(r) for r in reasons.dropna())
    return IngestResult(lines=lines, rows_read=rows.count, skipped=dict(sorted(skipped.items())), notes=notes)
