"""Turning tabular files (CSV, JSON Lines, Parquet) into contract v1 message lines.

Pure functions: they read a file, map its columns onto a source's contract fields, and return the
message lines with counts of rows read and rejected (by reason), so `metrify ingest` only wires them
to the landing directory. Records keep their values as given; the pipeline's record rules judge them.
A row that cannot be mapped is not dropped: its line is landed in a form the pipeline's decoder
quarantines with a reason (the line as given, or the row with its unusable value as text), so the
pipeline's records_in equals the rows read and every row is accepted or quarantined.
docs/ingest-mapping.md describes the mapping and the presets' arithmetic (`uci-household`, `openstef`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from metrify_assets.contracts import METER_READINGS, WEATHER_OBSERVATIONS, contract_for
from metrify_assets.ingestion.preset_names import OPENSTEF_PRESET, PRESETS, UCI_PRESET
from metrify_assets.ingestion.readers.csvfile import read_csv, separator_hint
from metrify_assets.ingestion.readers.jsonl import read_jsonl
from metrify_assets.ingestion.readers.mapping import ColumnsError, map_records
from metrify_assets.ingestion.readers.parquet import read_parquet
from metrify_assets.ingestion.readers.presets.openstef import (
    OPENSTEF_METER_ID,
    OPENSTEF_STATION_ID,
    openstef_readings,
    openstef_table,
    openstef_weather,
)
from metrify_assets.ingestion.readers.presets.uci import (
    UCI_METER_ID,
    UCI_TIMEZONE,
    read_uci_household,
    uci_household_readings,
)
from metrify_assets.ingestion.readers.result import IngestResult, Rows

FORMATS = {
    ".csv": "csv",
    ".txt": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}


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


def read_table(path: Path, fmt: str | None = None, sep: str = ",") -> Rows:
    """A file's rows; values of text formats stay as given (text, JSON types) so mapping decides
    their types; a CSV's fields are separated by `sep`. Raises ValueError for a file that cannot be
    read as `fmt` at all."""
    fmt = fmt or detect_format(path)
    if sep != "," and fmt != "csv":
        raise ValueError(f"--delimiter is for CSV files, not {fmt}")
    if fmt == "csv":
        return read_csv(path, sep)
    if fmt == "jsonl":
        return read_jsonl(path)
    if fmt == "parquet":
        return read_parquet(path)
    raise ValueError(f"unknown format {fmt!r}; expected csv, jsonl or parquet")


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
    sep: str = ",",
    decimal_comma: bool = False,
    ambiguous: str | None = None,
) -> IngestResult:
    """Read `path` and return its records as message lines for `source` (a preset decides the layout).

    `uci-household` makes meter readings; `openstef` makes meter readings from `load` or weather
    observations from the weather columns, as `source` asks. `meter_id` / `station_id` default to the
    preset's own. `sep` (a CSV's separator), `decimal_comma` and `ambiguous` are the generic
    mapping's (`map_records`); a preset knows its layout.
    """
    contract_for(source)
    if timezone is not None:
        _check_timezone(timezone)
    if preset is None:
        fmt = fmt or detect_format(path)
        rows = read_table(path, fmt, sep)
        try:
            return map_records(
                rows, source, mapping, constants, timezone, ambiguous=ambiguous, decimal_comma=decimal_comma
            )
        except ColumnsError as err:
            hint = (
                separator_hint(list(rows.frame.columns), sep) if (fmt or detect_format(path)) == "csv" else ""
            )
            raise ColumnsError(f"{err}; {hint}" if hint else str(err)) from None
    given = [
        name
        for name, value in (
            ("--delimiter", sep != ","),
            ("--decimal-comma", decimal_comma),
            ("--ambiguous", ambiguous is not None),
        )
        if value
    ]
    if given:
        raise ValueError(f"{', '.join(given)} not with a preset: {preset} knows its file's layout")
    if preset == UCI_PRESET:
        if source != METER_READINGS.source:
            raise ValueError(f"preset {preset} produces meter_readings, not {source}")
        return uci_household_readings(
            read_uci_household(path), meter_id or UCI_METER_ID, timezone or UCI_TIMEZONE
        )
    if preset == OPENSTEF_PRESET:
        if source == METER_READINGS.source:
            return openstef_readings(openstef_table(path), meter_id or OPENSTEF_METER_ID, timezone)
        if source == WEATHER_OBSERVATIONS.source:
            return openstef_weather(openstef_table(path), station_id or OPENSTEF_STATION_ID, timezone)
        raise ValueError(f"preset {preset} produces meter_readings or weather_observations, not {source}")
    raise ValueError(f"unknown preset {preset!r}; expected one of {', '.join(PRESETS)}")


def _check_timezone(name: str) -> None:
    """Refuse a name that is not an IANA timezone before reading (pandas would raise a KeyError,
    or an IndexError for "", deep in the mapping)."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, IndexError):
        raise ValueError(f"unknown timezone {name!r}; expected an IANA name such as Europe/London") from None
