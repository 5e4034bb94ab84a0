"""Preset `openstef`: OpenSTEF's input CSV as meter readings (`load`) or weather observations."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from metrify_assets.contracts import METER_READINGS, WEATHER_OBSERVATIONS, SourceContract
from metrify_assets.ingestion.preset_names import OPENSTEF_PRESET
from metrify_assets.ingestion.readers.csvfile import read_csv
from metrify_assets.ingestion.readers.mapping import (
    as_numbers,
    floats_or_none,
    mapped_lines,
    parse_timestamps,
    written_timestamps,
)
from metrify_assets.ingestion.readers.result import IngestResult, Mapped, Rows, as_rows, merged

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


def read_openstef(path: Path) -> pd.DataFrame:
    """An OpenSTEF input CSV's readable rows: the column `datetime`, else the first (OpenSTEF writes
    its index there, unnamed or `datetime`), is the timestamp, as text."""
    return openstef_table(path).frame


def openstef_table(path: Path) -> Rows:
    """An OpenSTEF input CSV's rows, read as `read_csv` reads any CSV (rows it rejects are landed
    for quarantine), with the timestamp column named `datetime`. A file with a `datetime` column
    besides a first one (a row number, as `to_csv` writes a plain index) keeps it: renaming the
    first would make two."""
    rows = read_csv(path)
    if rows.frame.columns.empty or "datetime" in rows.frame.columns:
        return rows
    return replace(rows, frame=rows.frame.rename(columns={rows.frame.columns[0]: "datetime"}))


def _openstef_rows(
    frame: pd.DataFrame,
    factors: Mapping[str, float],
    timezone: str | None,
    optional: Collection[str] = (),
) -> tuple[list[str | None], pd.DataFrame, pd.Series, pd.Series]:
    """(timestamps written with the offset of `timezone` or UTC, None where invalid; each column of
    `factors` as numbers times its factor, NaN where that is not a finite number (a value the factor
    takes beyond float range too, which JSON could not carry); the first reason of each row that
    lacks one of them, None for a usable row; the column that gave it). An empty value of an
    `optional` column (its contract field is optional) is no reason: the record leaves it out.

    OpenSTEF writes UTC with an offset; a timestamp without one is read as UTC too (OpenSTEF's
    convention), unless `timezone` names another zone.
    """
    absent = [c for c in factors if c not in frame.columns]
    if absent:
        raise ValueError(f"not an OpenSTEF file with {', '.join(factors)}: no column {', '.join(absent)}")
    stamps, _ = parse_timestamps(frame["datetime"], timezone or "UTC")
    values = pd.DataFrame(
        {c: as_numbers(frame[c]) * factor for c, factor in factors.items()}, index=frame.index
    )
    values = values.where(np.isfinite(values))
    reasons = pd.Series(None, index=frame.index, dtype=object).where(stamps.notna(), "invalid_datetime")
    culprits = pd.Series(None, index=frame.index, dtype=object).where(stamps.notna(), "datetime")
    for column in factors:
        given = frame[column].notna()
        checks = [("invalid", ~given | values[column].notna())]
        if column not in optional:
            checks.insert(0, ("missing", given))
        for why, fine in checks:
            culprits = culprits.where(reasons.notna() | fine, column)
            reasons = reasons.where(reasons.notna() | fine, f"{why}_{column}")
    return written_timestamps(stamps, timezone), values, reasons, culprits


def _openstef_result(
    rows: Rows,
    contract: SourceContract,
    values: dict[str, list[Any]],
    raw: Mapping[str, str],
    reasons: pd.Series,
    culprits: pd.Series,
    notes: Mapping[str, int] | None = None,
) -> IngestResult:
    """Every row as a line (`mapped_lines`): `values` by contract field, and `raw` the OpenSTEF column
    each field is read from (its value is landed as given where it is not usable)."""
    given = {field: rows.frame[column] for field, column in raw.items()}
    unusable = {
        field: given[field].notna().to_numpy(dtype=bool)
        & np.array([v is None for v in values[field]], dtype=bool)
        for field in raw
    }
    blamed = culprits.map({column: field for field, column in raw.items()})
    return merged(rows, mapped_lines(contract, values, given, unusable, reasons, blamed), notes)


def openstef_readings(
    rows: Rows | pd.DataFrame, meter_id: str = OPENSTEF_METER_ID, timezone: str | None = None
) -> IngestResult:
    """OpenSTEF `load` (MW, taken as the mean over the quarter-hour that starts at the timestamp;
    negative = feed-in) ->
    15-minute meter readings: energy_kwh = |load| x 250 (MW x 0.25 h x 1000 kWh/MWh), direction
    `import` for load >= 0 and `export` below. Not rounded: the readings sum to the file's energy."""
    rows = as_rows(rows)
    if rows.frame.columns.empty:  # an empty file
        return merged(rows, Mapped())
    starts, values, reasons, culprits = _openstef_rows(
        rows.frame, {"load": KWH_PER_MW_QUARTER_HOUR}, timezone
    )
    kwh = values["load"]  # net: negative is feed-in
    count = len(kwh)
    readings: dict[str, list[Any]] = {
        "meter_id": [meter_id] * count,
        "reading_start": starts,
        "interval_minutes": [OPENSTEF_INTERVAL_MINUTES] * count,
        "energy_kwh": floats_or_none(kwh.abs()),
        "direction": [None if math.isnan(e) else "export" if e < 0 else "import" for e in kwh.tolist()],
        "source": [OPENSTEF_PRESET] * count,
    }
    raw = {"reading_start": "datetime", "energy_kwh": "load"}
    notes = {"export_intervals": int((kwh[reasons.isna()] < 0).sum())}
    return _openstef_result(rows, METER_READINGS, readings, raw, reasons, culprits, notes)


def openstef_weather(
    rows: Rows | pd.DataFrame, station_id: str = OPENSTEF_STATION_ID, timezone: str | None = None
) -> IngestResult:
    """OpenSTEF weather columns -> observations of one station, converted to the contract's units
    (`OPENSTEF_WEATHER`): pressure Pa -> hPa, humidity fraction -> %, rain mm/h -> mm in the
    quarter-hour. The other columns (radiation, clouds, wind direction, ...) have no contract field.
    An empty humidity, pressure, wind speed or rain value is left out of its observation (those
    fields are optional); an empty temperature rejects the row (`missing_temp`)."""
    rows = as_rows(rows)
    if rows.frame.columns.empty:  # an empty file
        return merged(rows, Mapped())
    factors = {column: factor for column, (_, factor) in OPENSTEF_WEATHER.items()}
    optional = [
        column
        for column, (field, _) in OPENSTEF_WEATHER.items()
        if not WEATHER_OBSERVATIONS.field(field).required
    ]
    observed, values, reasons, culprits = _openstef_rows(rows.frame, factors, timezone, optional)
    observations: dict[str, list[Any]] = {"station_id": [station_id] * len(observed), "observed_at": observed}
    for column, (field, _) in OPENSTEF_WEATHER.items():
        observations[field] = floats_or_none(values[column])
    raw = {"observed_at": "datetime"} | {field: column for column, (field, _) in OPENSTEF_WEATHER.items()}
    return _openstef_result(rows, WEATHER_OBSERVATIONS, observations, raw, reasons, culprits)
