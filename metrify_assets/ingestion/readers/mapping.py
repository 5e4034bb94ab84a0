"""Mapping a file's columns onto a source's contract fields, typed by the pipeline decoder's rules
(`ingestion/decode.py`), so a record the reader lands is not malformed and a row it rejects is."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from numbers import Real
from typing import Any

import numpy as np
import pandas as pd

from metrify_assets.contracts import Field, SourceContract, contract_for, iso_with_offset
from metrify_assets.ingestion.decode import (
    INT_RANGE,
    ISO_DATE_TIME,
    ISO_HOUR_OFFSET,
    ISO_OFFSET,
    of_types,
    storable_text,
)
from metrify_assets.ingestion.readers.result import IngestResult, Mapped, Problem, Rows, as_rows, merged
from metrify_assets.ingestion.readers.text import first_surrogate

# The decoder's timestamp grammar; the reader also takes an hour-only offset (`+01`, as PostgreSQL
# writes one) and lands it as `+01:00`. An offset no place has (+14:30, +15) is invalid, as the
# decoder's `malformed:bad_offset`.
_WITH_OFFSET = rf"{ISO_DATE_TIME}(?:{ISO_OFFSET}|{ISO_HOUR_OFFSET})$"
_WITHOUT_OFFSET = rf"{ISO_DATE_TIME}$"


AMBIGUOUS_CHOICES = ("earlier", "later")  # --ambiguous: which instant a repeated local time is


def parse_timestamps(
    values: pd.Series, timezone: str | None, ambiguous: str | None = None
) -> tuple[pd.Series, pd.Series]:
    """(UTC timestamps, mask of valid naive values that no timezone could place), NaT where a value is
    not a date-time. Text is read in the decoder's grammar: an ISO date-time with an offset (also
    PostgreSQL's hour-only `+01`) is an instant; one without is local time in `timezone`; anything
    else is not a date-time. Local times that do not exist at a DST change are NaT, as are those
    that happen twice unless `ambiguous` picks the `earlier` or `later` of their instants."""
    stamps, local = _stamps_and_local(values)
    unplaced = pd.Series(False, index=values.index)
    if timezone is None:
        return stamps, local.notna()
    return stamps.where(local.isna(), _placed(local, timezone, ambiguous)), unplaced


def local_time_problems(values: pd.Series, timezone: str | None) -> tuple[pd.Series, pd.Series]:
    """(mask of naive values that happen twice in `timezone`, mask of those that do not exist there):
    local times at a DST change, which `parse_timestamps` leaves NaT."""
    _, local = _stamps_and_local(values)
    none = pd.Series(False, index=values.index)
    if timezone is None or not local.notna().any():
        return none, none
    shifted = local.dt.tz_localize(timezone, ambiguous="NaT", nonexistent="shift_forward")
    either = local.dt.tz_localize(timezone, ambiguous=np.ones(len(local), dtype=bool), nonexistent="NaT")
    return local.notna() & shifted.isna(), local.notna() & either.isna()


def _stamps_and_local(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(UTC instants of the values with an offset, naive local times of those without), NaT elsewhere."""
    if pd.api.types.is_datetime64_any_dtype(values):
        stamps = pd.Series(values)
        if stamps.dt.tz is not None:
            return stamps.dt.tz_convert("UTC"), pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns]")
        return pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns, UTC]"), stamps
    text = values.where(of_types(values, [str])).astype("string").str.strip()
    aware = text.str.match(_WITH_OFFSET, na=False)
    naive = text.str.match(_WITHOUT_OFFSET, na=False)
    result = pd.to_datetime(text.where(aware), errors="coerce", utc=True, format="ISO8601")
    return result, pd.to_datetime(text.where(naive), errors="coerce", format="ISO8601")


def check_ambiguous(ambiguous: str | None) -> None:
    """Raises ValueError unless `ambiguous` is None or one of AMBIGUOUS_CHOICES."""
    if ambiguous is not None and ambiguous not in AMBIGUOUS_CHOICES:
        raise ValueError(f"--ambiguous must be {' or '.join(AMBIGUOUS_CHOICES)}, not {ambiguous!r}")


def _placed(local: pd.Series, timezone: str, ambiguous: str | None) -> pd.Series:
    """Naive `local` times in `timezone` as UTC instants: NaT where one does not exist, and where one
    happens twice unless `ambiguous` picks one. Each repeated time's two instants are computed and
    the earlier or later one taken, so the pick does not depend on what a zone calls its DST."""
    if ambiguous is None:
        return local.dt.tz_localize(timezone, ambiguous="NaT", nonexistent="NaT").dt.tz_convert("UTC")
    check_ambiguous(ambiguous)
    flags = np.ones(len(local), dtype=bool)
    one = local.dt.tz_localize(timezone, ambiguous=flags, nonexistent="NaT").dt.tz_convert("UTC")
    other = local.dt.tz_localize(timezone, ambiguous=~flags, nonexistent="NaT").dt.tz_convert("UTC")
    earlier = one <= other
    return one.where(earlier if ambiguous == "earlier" else ~earlier, other)


def _flags(value: object) -> list[str]:
    """Status flags from a list of texts or a `,`/`|`-separated text (a missing value never gets
    here). Raises ValueError for anything else (an object, a list with a number or null), which the
    decoder refuses too."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, list):
        if not all(isinstance(v, str) for v in value):
            raise ValueError("not a list of texts")
        return value
    if not isinstance(value, str):
        raise ValueError("not a list of texts")
    return [part.strip() for part in re.split(r"[,|]", value) if part.strip()]


def as_numbers(raw: pd.Series, decimal_comma: bool = False) -> pd.Series:
    """Values as float64, NaN where not a finite number: text is parsed; JSON's true/false, objects,
    lists and numbers beyond float range (10**400) are not numbers. With `decimal_comma`, text has a
    decimal comma (`0,5`) and one with a point is not a number: `1.234` may be a thousand and more,
    so it is not guessed."""
    if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
        numbers = raw.astype("float64")
    else:
        values = raw.astype(object)
        is_text = of_types(values, [str])
        texts = values.where(is_text)
        if decimal_comma:
            texts = texts.where(~texts.astype("string").str.contains(".", regex=False).fillna(False), "x")
            texts = texts.astype("string").str.replace(",", ".", regex=False).astype(object)
        parsed = pd.to_numeric(texts, errors="coerce").to_numpy(dtype="float64", copy=True)
        # The rest one by one (JSON numbers, numpy scalars, Decimals); text, a CSV's every value, in
        # the one call above.
        others = np.flatnonzero((values.notna() & ~is_text).to_numpy(dtype=bool))
        parsed[others] = [
            _float(v) if type(v) in _NUMBER_TYPES or _is_number(v) else math.nan for v in values.iloc[others]
        ]
        numbers = pd.Series(parsed, index=raw.index)
    return numbers.where(np.isfinite(numbers))


_NUMBER_TYPES = (int, float)  # the usual ones, checked first: an ABC check is ten times slower


def _is_number(value: object) -> bool:
    """A number other than a bool: numpy scalars, and Parquet decimals as Decimal."""
    return isinstance(value, Real | Decimal) and not isinstance(value, bool | np.bool_)


def _float(value: Real | Decimal) -> float:
    try:
        return float(value)
    except (OverflowError, ValueError):  # an int beyond float range, Decimal's signalling NaN
        return math.nan


Problems = list[tuple[str, pd.Series]]  # (reason prefix, mask of rows that have it)


@dataclass(frozen=True)
class Reading:
    """How the mapping reads values: naive times in `timezone` (a repeated one as its `ambiguous`
    instant: earlier or later), numbers in text with a decimal comma or point."""

    timezone: str | None = None
    ambiguous: str | None = None
    decimal_comma: bool = False


# Reason prefixes of local times a DST change leaves without one instant, and what the landed value
# says of them (the decoder quarantines it as a bad timestamp, its payload says why).
AMBIGUOUS, NONEXISTENT = "ambiguous_local_time_in", "nonexistent_local_time_in"
_DST_NOTES = {
    AMBIGUOUS: "ambiguous in {zone}: it happens twice when the clocks go back",
    NONEXISTENT: "does not exist in {zone}: the clocks skip it",
}


def _field_values(f: Field, raw: pd.Series, reading: Reading) -> tuple[list[Any], pd.Series, Problems]:
    """(Python values with None for missing or invalid, mask of missing, problems) for one field."""
    timezone = reading.timezone
    # A blank cell is no value; blank flags are no flags (`[]`), as written.
    missing = raw.isna() if f.type == "str_list" else raw.isna() | _blank(raw)
    if f.type == "str":
        # Text, or whole numbers from an integer column (a Parquet id); a JSON number, true or an
        # object is not text, as the decoder says (bad_type).
        is_text = raw.astype(str) if raw.dtype.kind in "iu" else raw.where(of_types(raw, [str]))
        texts = is_text.astype("string").str.strip()
        bad = ~missing & (texts.isna() | ~storable_text(texts.fillna("")))
        usable = texts.where(~missing & ~bad)
        return usable.astype(object).where(usable.notna(), None).tolist(), missing, [("invalid", bad)]
    if f.type == "str_list":
        flags: list[Any] = []
        bad_flags = np.zeros(len(raw), dtype=bool)
        # Missing is what pandas calls missing (None, NaN, NA, a Parquet timestamp column's NaT).
        for i, (value, absent) in enumerate(
            zip(raw.astype(object), missing.to_numpy(dtype=bool), strict=True)
        ):
            if absent:
                flags.append(None)
                continue
            try:
                flags.append(_flags(value))
            except ValueError:
                flags.append(None)
                bad_flags[i] = True
        # Stored comma-joined, so the joined text is what must be storable (checked in one call).
        joined = pd.Series([",".join(v) if v else "" for v in flags], index=raw.index, dtype=object)
        for position in np.flatnonzero(~storable_text(joined).to_numpy(dtype=bool)):
            flags[position], bad_flags[position] = None, True
        return flags, missing, [("invalid", pd.Series(bad_flags, index=raw.index))]
    if f.type == "timestamp":
        stamps, naive = parse_timestamps(raw, timezone, reading.ambiguous)
        unplaced = ~missing & stamps.isna() & ~naive  # not a date-time, or not one instant here
        twice = skipped = pd.Series(False, index=raw.index)
        if unplaced.any():  # rare: a clean file is not parsed twice
            twice, skipped = local_time_problems(raw.where(unplaced), timezone)
        bad = unplaced & ~twice & ~skipped
        problems = [("invalid", bad), ("no_offset_in", naive), (AMBIGUOUS, twice), (NONEXISTENT, skipped)]
        return written_timestamps(stamps, timezone), missing, problems
    numbers = as_numbers(raw, reading.decimal_comma)
    if f.type == "int":  # whole and within PostgreSQL `integer`
        numbers = numbers.where((numbers % 1 == 0) & numbers.between(*INT_RANGE))
    bad = ~missing & numbers.isna()
    if f.type == "int":
        return [None if pd.isna(v) else int(v) for v in numbers], missing, [("invalid", bad)]
    return floats_or_none(numbers), missing, [("invalid", bad)]


def _blank(raw: pd.Series) -> pd.Series:
    """Mask of text that is empty or whitespace only: a blank cell is no value, whatever the field's
    type (a blank energy is `missing_energy_kwh`, not an invalid number)."""
    if raw.dtype.kind != "O" and not pd.api.types.is_string_dtype(raw):
        return pd.Series(False, index=raw.index)
    texts = raw.where(of_types(raw, [str])).astype("string")
    return (texts.str.strip() == "").fillna(False).astype(bool)


def floats_or_none(numbers: pd.Series) -> list[float | None]:
    """`numbers` as Python floats, None for NaN (a field left out)."""
    return [None if math.isnan(v) else v for v in numbers.tolist()]


def written_timestamps(stamps: pd.Series, timezone: str | None) -> list[str | None]:
    """UTC `stamps` as the contract's text, with the offset of `timezone` (UTC without one); None for NaT."""
    iso = iso_with_offset(pd.DatetimeIndex(stamps.dropna()).tz_convert(timezone or "UTC"))
    written: list[str | None] = [None] * len(stamps)
    for position, text in zip(np.flatnonzero(stamps.notna().to_numpy()), iso, strict=True):
        written[position] = text
    return written


def _as_given(f: Field, value: object) -> object:
    """An unusable value as the decoder will refuse it: a text or flags field's as is (a number, an
    object, a list of numbers, a text too long), another field's as text (a bad type, or a timestamp
    without offset or that does not parse)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if f.type in ("str", "str_list"):
        return value.item() if isinstance(value, np.generic) else value
    if isinstance(value, pd.Timestamp | datetime):
        return value.isoformat()
    return value if isinstance(value, str) else str(value)


def _landed(record: dict[str, Any]) -> str:
    """A rejected row's line. A value json cannot write stands as an object naming its type, which
    no field takes, so the decoder still refuses the row: a type JSON has no name for (Parquet's
    bytes, a Decimal or a date in a text field), or nesting deeper than json writes from here
    (json parsed it a few calls up, where the stack was shallower)."""
    try:
        return json.dumps(record)
    except (TypeError, RecursionError):
        return json.dumps({name: _writable(value) for name, value in record.items()})


def _writable(value: object) -> object:
    try:
        json.dumps(value)
    except TypeError:
        return {type(value).__name__: str(value)}
    except RecursionError:
        return {type(value).__name__: _TOO_DEEP}
    return value


_TOO_DEEP = "nested too deep to write"


def _json_or_text(value: object) -> str:
    """A JSON value as JSON (`Infinity`, `{"a": 1}`), anything else (a Decimal, a date) as text."""
    if not isinstance(value, dict | list | bool | int | float):
        return str(value)
    try:
        return json.dumps(value, default=str)
    except RecursionError:
        return _TOO_DEEP


def shown(value: object) -> str:
    """A value as the user wrote it, cut to 40 characters for a message."""
    text = value if isinstance(value, str) else _json_or_text(value)
    return repr(text if len(text) <= 40 else text[:39] + "...")


class ColumnsError(ValueError):
    """The options name columns the file does not have: a usage error, whatever its rows."""


def _columns(
    frame: pd.DataFrame, contract: SourceContract, mapping: Mapping[str, str], constants: Mapping[str, str]
) -> dict[str, pd.Series]:
    """Each field's values: its `--set` constant, else its column (its own name unless `mapping`
    names another). Raises ValueError when a mapped column or a required field's column is absent."""
    absent = sorted(col for col in mapping.values() if col not in frame.columns)
    if absent:
        raise ColumnsError(f"columns not in the file: {', '.join(absent)}")
    columns: dict[str, pd.Series] = {}
    for f in contract.fields:
        column = mapping.get(f.name, f.name)
        if f.name in constants:  # --set: every record, whether the file has the column or not
            columns[f.name] = pd.Series(constants[f.name], index=frame.index, dtype=object)
        elif column in frame.columns:
            columns[f.name] = frame[column]
        elif f.required:
            raise ColumnsError(f"no column for required field {f.name!r}: use --map {f.name}=COLUMN or --set")
    return columns


def _map_rows(
    frame: pd.DataFrame,
    source: str,
    mapping: Mapping[str, str],
    constants: Mapping[str, str],
    reading: Reading,
) -> Mapped:
    """Every row mapped: a record, or the row the decoder will quarantine (its usable fields typed,
    its unusable ones as given, a missing required one left out) with the value that decided its
    reason. A local time that a DST change leaves without one instant is landed with the reason
    after it (`2026-10-25 01:30 (ambiguous in Europe/London: ...)`), so the decoder quarantines it
    as a bad timestamp whose payload says why, not as a timestamp without an offset."""
    contract = contract_for(source)
    columns = _columns(frame, contract, mapping, constants)
    reason = pd.Series(None, index=frame.index, dtype=object)
    culprit = pd.Series(None, index=frame.index, dtype=object)  # the field that gave the reason
    values: dict[str, list[Any]] = {}
    unusable: dict[str, np.ndarray] = {}
    landed: dict[str, dict[int, str]] = {}
    for name, raw in columns.items():
        f = contract.field(name)
        values[name], missing, problems = _field_values(f, raw, reading)
        if f.required:
            reason = reason.where(reason.notna() | ~missing, f"missing_{name}")
        bad = np.zeros(len(frame), dtype=bool)
        for prefix, mask in problems:
            culprit = culprit.where(reason.notna() | ~mask, name)
            reason = reason.where(reason.notna() | ~mask, f"{prefix}_{name}")
            bad |= mask.to_numpy(dtype=bool)
            if prefix in _DST_NOTES:
                note = _DST_NOTES[prefix].format(zone=reading.timezone)
                for i in np.flatnonzero(mask.to_numpy(dtype=bool)):
                    landed.setdefault(name, {})[int(i)] = f"{_as_given(f, raw.iloc[i])} ({note})"
        unusable[name] = bad
    return mapped_lines(contract, values, columns, unusable, reason, culprit, landed)


def mapped_lines(
    contract: SourceContract,
    values: Mapping[str, list[Any]],
    given: Mapping[str, pd.Series],
    unusable: Mapping[str, np.ndarray],
    reasons: pd.Series,
    culprits: pd.Series,
    landed: Mapping[str, Mapping[int, str]] | None = None,
) -> Mapped:
    """Each row's line: its record (`values` by field, None left out) or, for a row with a reason, the
    line the decoder will quarantine: its usable values, each `unusable` one as `given` (or as
    `landed` gives it, by field and row), a missing one left out. The problem shows the given value
    of the field that gave the reason (`culprits`; none for one that is not a field, or whose value
    is missing)."""
    landed = landed or {}
    out = Mapped()
    for i, (why, blamed) in enumerate(zip(reasons.tolist(), culprits.tolist(), strict=True)):
        if not isinstance(why, str):  # a record: the common case, kept to one dict and one dumps
            out.lines.append(json.dumps({n: v[i] for n, v in values.items() if v[i] is not None}))
            continue
        record: dict[str, Any] = {}
        for name, typed in values.items():
            if i in landed.get(name, {}):
                record[name] = landed[name][i]
            elif name in unusable and unusable[name][i]:
                record[name] = _as_given(contract.field(name), given[name].iloc[i])
            elif typed[i] is not None:
                record[name] = typed[i]
        value = given[blamed].iloc[i] if isinstance(blamed, str) else None
        detail = "" if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)) else shown(value)
        out.problems[i] = Problem(why, detail)
        out.lines.append(_landed(record))
    return out


def map_records(
    rows: Rows | pd.DataFrame,
    source: str,
    mapping: Mapping[str, str] | None = None,
    constants: Mapping[str, str] | None = None,
    timezone: str | None = None,
    *,
    ambiguous: str | None = None,
    decimal_comma: bool = False,
) -> IngestResult:
    """Map columns to `source`'s contract fields (a field reads the column of its own name unless
    `mapping` names another; `constants` fill fields for every row) and build message lines.

    Naive timestamps are local time in `timezone`; without one they are rejected, since guessing UTC
    would shift readings silently (`no_offset_in_<field>`). A row is rejected with its first reason:
    `missing_<field>` for an empty required field, `invalid_<field>` for a value that does not parse
    as the field's type (or an int outside PostgreSQL `integer`), `ambiguous_local_time_in_<field>`
    for a local time that happens twice at a DST change (unless `ambiguous` is `earlier` or `later`),
    `nonexistent_local_time_in_<field>` for one the change skips. Numbers in text have a decimal
    point, or with `decimal_comma` a decimal comma. Rejected rows are landed too, in a form the
    pipeline quarantines. The columns the options need are checked against the file's header
    whatever its rows (ColumnsError), also when every row was rejected (a file without rows holds
    no records, which the command says).
    """
    rows = as_rows(rows)
    contract = contract_for(source)
    mapping, constants = dict(mapping or {}), dict(constants or {})
    unknown = (set(mapping) | set(constants)) - set(contract.columns)
    if unknown:
        raise ValueError(f"not fields of {source}: {', '.join(sorted(unknown))}")
    both = sorted(set(mapping) & set(constants))
    if both:
        raise ValueError(f"--map and --set for the same field: {', '.join(both)}")
    undecodable = [f"{k}={v!r}" for k, v in constants.items() if first_surrogate(v)]
    if undecodable:  # a command line with bytes that are not UTF-8
        raise ValueError(f"not UTF-8 text: {', '.join(undecodable)}")
    check_ambiguous(ambiguous)
    reading = Reading(timezone, ambiguous, decimal_comma)
    if rows.positions:
        mapped = _map_rows(rows.frame, source, mapping, constants, reading)
    else:
        if rows.rejected and len(rows.frame.columns):  # a header (CSV) whose every row was rejected
            _columns(rows.frame, contract, mapping, constants)
        mapped = Mapped()
    return merged(rows, mapped)
