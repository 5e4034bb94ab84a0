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

import csv
import io
import itertools
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from numbers import Real
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from metrify_assets.contracts import (
    METER_READINGS,
    WEATHER_OBSERVATIONS,
    Field,
    contract_for,
    iso_with_offset,
)
from metrify_assets.ingestion.decode import _ISO_DATE_TIME as ISO_DATE_TIME
from metrify_assets.ingestion.decode import _OFFSET as ISO_OFFSET
from metrify_assets.ingestion.decode import INT_RANGE, MAX_TEXT_LENGTH
from metrify_assets.ingestion.landing import landed_messages

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
# The decoder's timestamp grammar; the reader also takes an hour-only offset (`+01`, as PostgreSQL
# writes one) and lands it as `+01:00`.
_WITH_OFFSET = rf"{ISO_DATE_TIME}(?:{ISO_OFFSET}|[+-][0-9]{{2}})$"
_WITHOUT_OFFSET = rf"{ISO_DATE_TIME}$"


MAX_EXAMPLES = 10  # rejected rows named (with their line or row) in a result, first ones first


@dataclass(frozen=True)
class IngestResult:
    """Message lines in input order and what happened to the input rows.

    `lines` holds the records and, where a row was rejected, the line the pipeline quarantines in
    its place (counted in `rejected`), so landing `lines` accounts for every row read."""

    lines: list[str]
    rows_read: int
    rejected: dict[str, int] = field(default_factory=dict)  # reason -> rows landed for quarantine
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> rows a preset leaves out
    notes: dict[str, int] = field(default_factory=dict)  # facts worth knowing, e.g. partial intervals
    examples: list[str] = field(default_factory=list)  # "line 3: invalid_json (...)", at most MAX_EXAMPLES

    @property
    def records(self) -> int:
        """Lines that are records (the rest are rejected rows)."""
        return len(self.lines) - sum(self.rejected.values())


@dataclass(frozen=True)
class Mapped:
    """A row mapped to its landing line: a record, or with a reason (and the value that gave it) a
    line the pipeline's decoder quarantines."""

    line: str
    reason: str | None = None
    detail: str = ""


@dataclass(frozen=True)
class Accepted:
    """A record's line at its position among the input rows."""

    position: int
    line: str


@dataclass(frozen=True)
class Rejected:
    """An input row that is not a record: its position among the rows, where it was, why, and the
    line landed for it (one the pipeline's decoder quarantines)."""

    position: int
    where: str  # "line 3" or "row 3"
    reason: str
    detail: str
    line: str

    @property
    def example(self) -> str:
        """`line 3: invalid_json (column 36: ...)`, as the command prints it."""
        return f"{self.where}: {self.reason}" + (f" ({self.detail})" if self.detail else "")


@dataclass(frozen=True)
class Rows:
    """A file's rows: `frame` holds those to map (at `positions`, named `where`); `rejected` the rest."""

    frame: pd.DataFrame
    positions: list[int]
    where: list[str]
    rejected: list[Rejected] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.positions) + len(self.rejected)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> Rows:
        """Every row of `frame`, named `row 1`, `row 2`, ..."""
        return cls(
            frame.reset_index(drop=True), list(range(len(frame))), [f"row {i + 1}" for i in range(len(frame))]
        )


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


def _text_body(path: Path, fmt: str) -> bytes:
    """The file's bytes. A file with NUL bytes is binary (compressed, Parquet, ...), and one without a
    single UTF-8 line is in another encoding: neither is `fmt` text, so nothing of it is landed."""
    body = path.read_bytes()
    nul = body.find(b"\x00")
    if nul >= 0:
        raise ValueError(
            f"{path.name} is not {fmt} text: it holds binary data (a NUL byte at offset {nul}); "
            "is it compressed, or Parquet (--format parquet)?"
        )
    lines = [(number, line) for number, line in enumerate(body.split(b"\n"), start=1) if line.strip()]
    if lines and not any(_is_utf8(line) for _, line in lines):
        number, line = lines[0]
        raise ValueError(
            f"{path.name} is not UTF-8 text (line {number}: {_utf8_error(line)}); "
            "convert it first, e.g. `iconv -f latin1 -t utf-8`"
        )
    return body


def _is_utf8(line: bytes) -> bool:
    try:
        line.decode()
    except UnicodeDecodeError:
        return False
    return True


def _is_utf8_text(text: str) -> bool:
    """Whether `text` holds no lone surrogate (bytes that were not UTF-8, or half a pair)."""
    return _SURROGATE.search(text) is None


_SURROGATE = re.compile("[\ud800-\udfff]")


def _not_json(text: str) -> str:
    """`text` as a landing line the decoder rejects as invalid JSON, or as a JSON string (rejected as
    not an object) in the rare case that escaping its invalid bytes made it valid JSON."""
    try:
        json.loads(text)
    except ValueError:
        return text
    return json.dumps(text)


def _utf8_error(line: bytes) -> str:
    """Where a line stops being UTF-8, for the message."""
    try:
        line.decode()
    except UnicodeDecodeError as err:
        return f"byte 0x{line[err.start]:02x} at column {err.start + 1}"
    return ""


def read_jsonl(path: Path) -> Rows:
    """JSON Lines, one line at a time: a line is a record object, or `{"records": [...]}` whose
    objects are rows (as the pipeline reads a message). A line that is empty, not JSON, not UTF-8
    or not an object is rejected with its line number and landed as given (invalid bytes escaped as
    `\\xNN`), so the pipeline quarantines it as malformed."""
    objects: list[dict[str, Any]] = []
    positions: list[int] = []
    where: list[str] = []
    rejected: list[Rejected] = []

    def reject(number: int, reason: str, detail: str, line: str) -> None:
        position = len(objects) + len(rejected)
        rejected.append(Rejected(position, f"line {number}", reason, detail, line))

    body = _text_body(path, "JSON Lines")
    _refuse_one_document(path, body)
    for number, raw in enumerate(landed_messages(body), start=1):
        try:
            text = raw.decode()
        except UnicodeDecodeError:
            escaped = raw.decode(errors="backslashreplace")
            reject(number, "not_utf8", _utf8_error(raw), _not_json(escaped))
            continue
        if not text.strip():
            reject(number, "empty_line", "", text)
            continue
        try:
            parsed = json.loads(text)  # json, not orjson: it keeps an integer beyond 64 bits as written
        except json.JSONDecodeError as err:
            reject(number, "invalid_json", f"column {err.colno}: {err.msg}", text)
            continue
        except RecursionError:
            reject(number, "invalid_json", "nested too deep", text)
            continue
        surrogate = _lone_surrogate(text, parsed)
        if surrogate:
            reject(number, "invalid_json", f"lone surrogate {surrogate}", text)
            continue
        if isinstance(parsed, dict) and "records" in parsed:
            items = parsed["records"]
            if not isinstance(items, list):
                reject(number, "records_not_a_list", "", text)
                continue
            for offset, item in enumerate(items):
                if isinstance(item, dict):
                    positions.append(len(objects) + len(rejected))
                    where.append(f"line {number} record {offset + 1}")
                    objects.append(item)
                else:
                    rejected.append(
                        Rejected(
                            len(objects) + len(rejected),
                            f"line {number} record {offset + 1}",
                            "not_an_object",
                            type(item).__name__,
                            json.dumps(item),
                        )
                    )
            continue
        if not isinstance(parsed, dict):
            reject(number, "not_an_object", "null" if parsed is None else type(parsed).__name__, text)
            continue
        positions.append(len(objects) + len(rejected))
        where.append(f"line {number}")
        objects.append(parsed)
    # As objects: values keep their JSON types, and mapping decides (no inference of dates or text dtypes).
    frame = pd.DataFrame(
        {key: pd.Series([o.get(key) for o in objects], dtype=object) for key in _keys(objects)}
    )
    return Rows(frame.reset_index(drop=True), positions, where, rejected)


def _lone_surrogate(text: str, parsed: object) -> str:
    """The first `\\uD800`-`\\uDFFF` escape of a line whose parsed values hold a half of a surrogate
    pair (json takes one; UTF-8, pandas and the decoder's orjson do not), or ""."""
    escape = _SURROGATE_ESCAPE.search(text)
    if escape is None:
        return ""
    try:
        json.dumps(parsed, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return escape.group()
    return ""


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _refuse_one_document(path: Path, body: bytes) -> None:
    """Refuse a pretty-printed JSON document (a `.json` array, say): read as JSON Lines, each of its
    lines would be an invalid record, landed and quarantined for nothing."""
    lines = body.lstrip().split(b"\n", 1)
    if len(lines) < 2 or not lines[1].strip() or _is_json(lines[0]) or not _is_json(body):
        return
    raise ValueError(
        f"{path.name} is one JSON document over several lines, not JSON Lines (one record per line); "
        f"convert it first, e.g. `jq -c '.[]' {path.name} > {path.stem}.jsonl` for an array"
    )


def _is_json(text: bytes) -> bool:
    try:
        json.loads(text)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return False
    return True


def _keys(objects: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every key of `objects`, in order of first appearance."""
    return list(dict.fromkeys(key for o in objects for key in o))


def read_csv(path: Path, sep: str = ",") -> Rows:
    """A CSV file with a header; values as text, so mapping decides their types. Rows are numbered
    from 1 after the header; blank lines are not rows. A row that cannot be a record is rejected and
    landed in a form the decoder quarantines: more fields than the header (`extra_fields`, landed as a
    JSON array of its fields), a quote that never closes (`unclosed_quote`: its line as given, and
    reading goes on at the next line), bytes that are not UTF-8 (`not_utf8`, a JSON object with them
    as lone surrogates, which the decoder refuses)."""
    body = _text_body(path, "CSV")
    try:
        frame = _pandas_csv(body, sep)
    except pd.errors.EmptyDataError:
        return Rows(pd.DataFrame(), [], [])
    rows = _exact_csv(body, sep) if frame is None else Rows.from_frame(frame)
    return rows if _is_utf8(body) else _without_mangled(rows)


def _pandas_csv(body: bytes, sep: str) -> pd.DataFrame | None:
    """The fast path: pandas' C parser, or None where it cannot be trusted with every row (it refuses
    a row with extra fields or an unclosed quote, and takes one extra field on the first row for an
    index column)."""
    try:
        frame = pd.read_csv(
            io.BytesIO(body),
            sep=sep,
            dtype=object,
            keep_default_na=False,
            na_values=[""],
            encoding_errors="surrogateescape",
        )
    except pd.errors.ParserError:
        return None
    return frame if isinstance(frame.index, pd.RangeIndex) else None


# Ends the text fed to `csv.reader`: inside a field it shows a quote that never closed (no text file
# holds a NUL: `_text_body` refuses those).
_END = "\x00"


def _exact_csv(body: bytes, sep: str) -> Rows:
    """Every row with Python's csv module, for a file pandas refuses: a row with more fields than
    the header or an unclosed quote is rejected, the others are read as pandas would."""
    lines = list(io.StringIO(body.decode("utf-8-sig", errors="surrogateescape"), newline=""))
    parsed = (fields for fields in _csv_rows(lines, sep) if not _blank(fields))
    first = next(parsed, None)
    if first is None:
        return Rows(pd.DataFrame(), [], [])
    if isinstance(first, int):
        raise ValueError(f"the header of the CSV has a quote that never closes: {lines[first].rstrip()!r}")
    header = _column_names(first)
    kept: list[list[str | None]] = []
    positions: list[int] = []
    rejected: list[Rejected] = []
    for position, fields in enumerate(parsed):
        where = f"row {position + 1}"
        if isinstance(fields, int):
            raw = (
                lines[fields]
                .rstrip("\r\n")
                .encode(errors="surrogateescape")
                .decode(errors="backslashreplace")
            )
            rejected.append(
                Rejected(position, where, "unclosed_quote", "a quote never closes", _not_json(raw))
            )
        elif len(fields) > len(header):
            detail = f"{len(fields)} fields, the header has {len(header)}"
            rejected.append(Rejected(position, where, "extra_fields", detail, json.dumps(fields)))
        else:
            kept.append([v if v else None for v in fields] + [None] * (len(header) - len(fields)))
            positions.append(position)
    frame = pd.DataFrame(kept, columns=header, dtype=object)
    return Rows(frame, positions, [f"row {p + 1}" for p in positions], rejected)


def _csv_rows(lines: list[str], sep: str) -> Iterator[list[str] | int]:
    """The fields of each row of `lines`, or for a row whose quote never closes the index of its
    first line (reading goes on at the next line: the quote was a slip, not a field over lines)."""
    start = 0
    while start < len(lines):
        reader = csv.reader(itertools.chain(itertools.islice(lines, start, None), [_END]), delimiter=sep)
        consumed = 0
        for fields in reader:
            first, consumed = start + consumed, reader.line_num
            if fields == [_END]:
                return
            if fields and _END in fields[-1]:
                yield first
                start = first + 1
                break
            yield fields
        else:
            return


def _blank(fields: list[str] | int) -> bool:
    """A blank line, which pandas does not count as a row either."""
    return isinstance(fields, list) and (not fields or (len(fields) == 1 and not fields[0].strip()))


def _column_names(header: list[str]) -> list[str]:
    """Header names as pandas gives them: `Unnamed: i` for an empty one, `a.1` for a repeated `a`."""
    names: list[str] = []
    for i, name in enumerate(header):
        name = name or f"Unnamed: {i}"
        base, n = name, 0
        while name in names:
            n += 1
            name = f"{base}.{n}"
        names.append(name)
    return names


def _without_mangled(rows: Rows) -> Rows:
    """`rows` with those holding bytes that are not UTF-8 (read as surrogates) rejected as `not_utf8`."""
    frame = rows.frame
    mangled = frame.apply(lambda row: any(_has_surrogate(v) for v in row), axis=1).to_numpy(dtype=bool)
    if not mangled.any():
        return rows
    rejected = list(rows.rejected)
    for i in np.flatnonzero(mangled):
        row = {str(k): v for k, v in frame.iloc[i].items() if not pd.isna(v)}
        column = next(k for k, v in row.items() if _has_surrogate(v))
        escaped = next(c for c in row[column] if _has_surrogate(c))  # surrogateescape: U+DC00 + byte
        detail = f"byte 0x{ord(escaped) - 0xDC00:02x} in column {column!r}"
        rejected.append(Rejected(rows.positions[i], rows.where[i], "not_utf8", detail, json.dumps(row)))
    keep = ~mangled
    return Rows(
        frame[keep].reset_index(drop=True),
        [p for p, k in zip(rows.positions, keep, strict=True) if k],
        [w for w, k in zip(rows.where, keep, strict=True) if k],
        sorted(rejected, key=lambda r: r.position),
    )


def _has_surrogate(value: object) -> bool:
    """Whether a text read with `surrogateescape` held bytes that are not UTF-8."""
    return isinstance(value, str) and not value.isascii() and any("\udc80" <= c <= "\udcff" for c in value)


def read_table(path: Path, fmt: str | None = None) -> Rows:
    """A file's rows; values of text formats stay as given (text, JSON types) so mapping decides
    their types. Raises ValueError for a file that cannot be read as `fmt` at all."""
    fmt = fmt or detect_format(path)
    if fmt == "csv":
        return read_csv(path)
    if fmt == "jsonl":
        return read_jsonl(path)
    if fmt == "parquet":
        try:
            frame = pd.read_parquet(path)
        except (OSError, pa.ArrowException) as err:
            raise ValueError(f"cannot read {path.name} as Parquet: {err}") from err
        return Rows.from_frame(frame)
    raise ValueError(f"unknown format {fmt!r}; expected csv, jsonl or parquet")


def parse_timestamps(values: pd.Series, timezone: str | None) -> tuple[pd.Series, pd.Series]:
    """(UTC timestamps, mask of valid naive values that no timezone could place), NaT where a value is
    not a date-time. Text is read in the decoder's grammar: an ISO date-time with an offset (also
    PostgreSQL's hour-only `+01`) is an instant; one without is local time in `timezone`; anything
    else is not a date-time. Local times that do not exist or are ambiguous at a DST change are NaT."""
    unplaced = pd.Series(False, index=values.index)
    if pd.api.types.is_datetime64_any_dtype(values):
        stamps = pd.Series(values)
        if stamps.dt.tz is not None:
            return stamps.dt.tz_convert("UTC"), unplaced
        if timezone is None:
            return pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns, UTC]"), stamps.notna()
        local = stamps.dt.tz_localize(timezone, ambiguous="NaT", nonexistent="NaT")
        return local.dt.tz_convert("UTC"), unplaced
    text = values.where(values.map(lambda v: isinstance(v, str))).astype("string").str.strip()
    aware = text.str.match(_WITH_OFFSET, na=False)
    naive = text.str.match(_WITHOUT_OFFSET, na=False)
    result = pd.to_datetime(text.where(aware), errors="coerce", utc=True, format="ISO8601")
    local = pd.to_datetime(text.where(naive), errors="coerce", format="ISO8601")
    if timezone is None:
        return result, local.notna()
    placed = local.dt.tz_localize(timezone, ambiguous="NaT", nonexistent="NaT").dt.tz_convert("UTC")
    return result.where(aware, placed), unplaced


def _flags(value: object) -> list[str] | None:
    """Status flags from a list of texts or a `,`/`|`-separated text; None when missing. Raises
    ValueError for anything else (an object, a list with a number or null), which the decoder
    refuses too."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, list):
        if not all(isinstance(v, str) for v in value):
            raise ValueError("not a list of texts")
        return value
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return None
    if not isinstance(value, str):
        raise ValueError("not a list of texts")
    return [part.strip() for part in re.split(r"[,|]", value) if part.strip()]


def _storable(texts: pd.Series) -> pd.Series:
    """The decoder's bad_text rule: at most MAX_TEXT_LENGTH characters, no NUL."""
    return (texts.str.len() <= MAX_TEXT_LENGTH) & ~texts.str.contains("\x00", regex=False)


def _numbers(raw: pd.Series) -> pd.Series:
    """Values as float64, NaN where not a finite number: text is parsed; JSON's true/false, objects,
    lists and numbers beyond float range (10**400) are not numbers."""
    if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
        numbers = raw.astype("float64")
    else:
        values = raw.astype(object)
        parsed = pd.to_numeric(values.map(lambda v: v if isinstance(v, str) else None), errors="coerce")
        numbers = pd.Series(
            [
                _float(v) if isinstance(v, Real | Decimal) and not isinstance(v, bool | np.bool_) else text
                for v, text in zip(values, parsed.astype("float64"), strict=True)
            ],
            index=raw.index,
            dtype="float64",
        )
    return numbers.where(np.isfinite(numbers))


def _float(value: Real | Decimal) -> float:
    try:
        return float(value)
    except (OverflowError, ValueError):  # an int beyond float range, Decimal's signalling NaN
        return math.nan


Problems = list[tuple[str, pd.Series]]  # (reason prefix, mask of rows that have it)


def _field_values(f: Field, raw: pd.Series, timezone: str | None) -> tuple[list[Any], pd.Series, Problems]:
    """(Python values with None for missing or invalid, mask of missing, problems) for one field."""
    missing = raw.isna()
    if f.type == "str":
        # Text, or whole numbers from an integer column (a Parquet id); a JSON number, true or an
        # object is not text, as the decoder says (bad_type).
        is_text = (
            raw.astype(str) if raw.dtype.kind in "iu" else raw.where(raw.map(lambda v: isinstance(v, str)))
        )
        texts = is_text.astype("string").str.strip()
        missing = missing | (texts == "").fillna(False)  # a blank value is no value
        bad = ~missing & (texts.isna() | ~_storable(texts).fillna(False))
        usable = texts.where(~missing & ~bad)
        return usable.astype(object).where(usable.notna(), None).tolist(), missing, [("invalid", bad)]
    if f.type == "str_list":
        flags: list[Any] = []
        bad_flags = np.zeros(len(raw), dtype=bool)
        for i, value in enumerate(raw.astype(object)):
            try:
                flags.append(_flags(value))
            except ValueError:
                flags.append(None)
                bad_flags[i] = True
                continue
            if flags[-1] is not None and not _storable(pd.Series([",".join(flags[-1])])).iloc[0]:
                flags[-1], bad_flags[i] = None, True
        return flags, missing, [("invalid", pd.Series(bad_flags, index=raw.index))]
    if f.type == "timestamp":
        stamps, naive = parse_timestamps(raw, timezone)
        bad = ~missing & stamps.isna() & ~naive
        iso = iso_with_offset(pd.DatetimeIndex(stamps.dropna()).tz_convert(timezone or "UTC"))
        out: list[Any] = [None] * len(raw)
        for position, text in zip(np.flatnonzero(stamps.notna().to_numpy()), iso, strict=True):
            out[position] = text
        return out, missing, [("invalid", bad), ("no_offset_in", naive)]
    numbers = _numbers(raw)
    if f.type == "int":  # whole and within PostgreSQL `integer`
        numbers = numbers.where((numbers % 1 == 0) & numbers.between(*INT_RANGE))
    bad = ~missing & numbers.isna()
    if f.type == "int":
        return [None if pd.isna(v) else int(v) for v in numbers], missing, [("invalid", bad)]
    return [None if pd.isna(v) else float(v) for v in numbers], missing, [("invalid", bad)]


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


def _json_or_text(value: object) -> str:
    """A JSON value as JSON (`Infinity`, `{"a": 1}`), anything else (a Decimal, a date) as text."""
    return (
        json.dumps(value, default=str) if isinstance(value, dict | list | bool | int | float) else str(value)
    )


def _shown(value: object) -> str:
    """A value as the user wrote it, cut to 40 characters for a message."""
    text = value if isinstance(value, str) else _json_or_text(value)
    return repr(text if len(text) <= 40 else text[:39] + "...")


def _map_rows(
    frame: pd.DataFrame,
    source: str,
    mapping: Mapping[str, str],
    constants: Mapping[str, str],
    timezone: str | None,
) -> list[Mapped]:
    """Every row mapped: a record (no reason), or the row the decoder will
    quarantine (its usable fields typed, its unusable ones as given, a missing required one left out)
    with the value that decided its reason."""
    contract = contract_for(source)
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
    culprit = pd.Series(None, index=frame.index, dtype=object)  # the field that gave the reason
    values: dict[str, list[Any]] = {}
    unusable: dict[str, np.ndarray] = {}
    for name, raw in columns.items():
        f = contract.field(name)
        values[name], missing, problems = _field_values(f, raw, timezone)
        if f.required:
            reason = reason.where(reason.notna() | ~missing, f"missing_{name}")
        bad = np.zeros(len(frame), dtype=bool)
        for prefix, mask in problems:
            culprit = culprit.where(reason.notna() | ~mask, name)
            reason = reason.where(reason.notna() | ~mask, f"{prefix}_{name}")
            bad |= mask.to_numpy(dtype=bool)
        unusable[name] = bad
    out: list[Mapped] = []
    for i, (why, blamed) in enumerate(zip(reason.tolist(), culprit.tolist(), strict=True)):
        if not isinstance(why, str):  # a record: the common case, kept to one dict and one dumps
            out.append(Mapped(json.dumps({n: v[i] for n, v in values.items() if v[i] is not None})))
            continue
        record: dict[str, Any] = {}
        for name, typed in values.items():
            if unusable[name][i]:
                record[name] = _as_given(contract.field(name), columns[name].iloc[i])
            elif typed[i] is not None:
                record[name] = typed[i]
        detail = _shown(columns[blamed].iloc[i]) if isinstance(blamed, str) else ""
        out.append(Mapped(json.dumps(record), why, detail))
    return out


def _result(rows: Rows, mapped: Sequence[Mapped], notes: Mapping[str, int] | None = None) -> IngestResult:
    """The lines of mapped rows and rejected ones merged back into input order, with counts and the
    first examples."""
    entries = [
        Rejected(position, where, m.reason, m.detail, m.line) if m.reason else Accepted(position, m.line)
        for position, where, m in zip(rows.positions, rows.where, mapped, strict=True)
    ]
    ordered = sorted([*entries, *rows.rejected], key=lambda e: e.position)
    rejected = [e for e in ordered if isinstance(e, Rejected)]
    return IngestResult(
        lines=[e.line for e in ordered],
        rows_read=rows.count,
        rejected=dict(sorted(Counter(r.reason for r in rejected).items())),
        notes=dict(notes or {}),
        examples=[r.example for r in rejected[:MAX_EXAMPLES]],
    )


def map_records(
    rows: Rows | pd.DataFrame,
    source: str,
    mapping: Mapping[str, str] | None = None,
    constants: Mapping[str, str] | None = None,
    timezone: str | None = None,
) -> IngestResult:
    """Map columns to `source`'s contract fields (a field reads the column of its own name unless
    `mapping` names another; `constants` fill fields for every row) and build message lines.

    Naive timestamps are local time in `timezone`; without one they are rejected, since guessing UTC
    would shift readings silently (`no_offset_in_<field>`). A row is rejected with its first reason:
    `missing_<field>` for an empty required field, `invalid_<field>` for a value that does not parse
    as the field's type (or a local time that does not exist or is ambiguous, or an int outside
    PostgreSQL `integer`). Rejected rows are landed too, in a form the pipeline quarantines.
    """
    if isinstance(rows, pd.DataFrame):
        rows = Rows.from_frame(rows)
    contract = contract_for(source)
    mapping, constants = dict(mapping or {}), dict(constants or {})
    unknown = (set(mapping) | set(constants)) - set(contract.columns)
    if unknown:
        raise ValueError(f"not fields of {source}: {', '.join(sorted(unknown))}")
    undecodable = [f"{k}={v!r}" for k, v in constants.items() if not _is_utf8_text(v)]
    if undecodable:  # a command line with bytes that are not UTF-8
        raise ValueError(f"not UTF-8 text: {', '.join(undecodable)}")
    mapped = _map_rows(rows.frame, source, mapping, constants, timezone) if rows.positions else []
    return _result(rows, mapped)


def read_openstef(path: Path) -> pd.DataFrame:
    """An OpenSTEF input CSV's readable rows: the first column (unnamed or `datetime`) is the
    timestamp, as text."""
    return openstef_table(path).frame


def openstef_table(path: Path) -> Rows:
    """An OpenSTEF input CSV's rows, read as `read_csv` reads any CSV (rows it rejects are landed
    for quarantine), with the first column named `datetime`."""
    rows = read_csv(path)
    if rows.frame.columns.empty:
        return rows
    return replace(rows, frame=rows.frame.rename(columns={rows.frame.columns[0]: "datetime"}))


def _openstef_rows(
    frame: pd.DataFrame, columns: Sequence[str], timezone: str | None
) -> tuple[list[str | None], pd.DataFrame, pd.Series, pd.Series]:
    """(timestamps written with the offset of `timezone` or UTC, None where invalid; numeric columns;
    the first reason of each row that lacks one of `columns`, None for a usable row; the column
    that gave it).

    OpenSTEF writes UTC with an offset; a timestamp without one is read as UTC too (OpenSTEF's
    convention), unless `timezone` names another zone.
    """
    absent = [c for c in columns if c not in frame.columns]
    if absent:
        raise ValueError(f"not an OpenSTEF file with {', '.join(columns)}: no column {', '.join(absent)}")
    stamps, _ = parse_timestamps(frame["datetime"], timezone or "UTC")
    values = pd.DataFrame({c: _numbers(frame[c]) for c in columns}, index=frame.index)
    reasons = pd.Series(None, index=frame.index, dtype=object).where(stamps.notna(), "invalid_datetime")
    culprits = pd.Series(None, index=frame.index, dtype=object).where(stamps.notna(), "datetime")
    for column in columns:
        for why, fine in (("missing", frame[column].notna()), ("invalid", values[column].notna())):
            culprits = culprits.where(reasons.notna() | fine, column)
            reasons = reasons.where(reasons.notna() | fine, f"{why}_{column}")
    iso = iso_with_offset(pd.DatetimeIndex(stamps.dropna()).tz_convert(timezone or "UTC"))
    written: list[str | None] = [None] * len(frame)
    for position, stamp in zip(np.flatnonzero(stamps.notna().to_numpy()), iso, strict=True):
        written[position] = stamp
    return written, values, reasons, culprits


def _openstef_result(
    rows: Rows,
    reasons: pd.Series,
    culprits: pd.Series,
    record: Callable[[int], dict[str, object]],
    raw: Mapping[str, str],
    notes: Mapping[str, int] | None = None,
) -> IngestResult:
    """Every row as a line: a usable row's `record(i)`; a rejected row's record with each unusable
    value as given (`raw`: contract field -> OpenSTEF column; an empty one left out), so the decoder
    quarantines it with a reason."""
    frame = rows.frame
    mapped: list[Mapped] = []
    for i, (why, culprit) in enumerate(zip(reasons.tolist(), culprits.tolist(), strict=True)):
        built = record(i)
        if not isinstance(why, str):
            mapped.append(Mapped(json.dumps(built)))
            continue
        for name, column in raw.items():
            if built.get(name) is None:
                given = frame[column].iloc[i]
                built[name] = None if pd.isna(given) else str(given)
        given = frame[culprit].iloc[i]
        detail = "" if pd.isna(given) else _shown(given)
        mapped.append(Mapped(json.dumps({k: v for k, v in built.items() if v is not None}), why, detail))
    return _result(rows, mapped, notes)


def openstef_readings(
    rows: Rows | pd.DataFrame, meter_id: str = OPENSTEF_METER_ID, timezone: str | None = None
) -> IngestResult:
    """OpenSTEF `load` (MW, taken as the mean over the quarter-hour that starts at the timestamp;
    negative = feed-in) ->
    15-minute meter readings: energy_kwh = |load| x 250 (MW x 0.25 h x 1000 kWh/MWh), direction
    `import` for load >= 0 and `export` below. Not rounded: the readings sum to the file's energy."""
    rows = rows if isinstance(rows, Rows) else Rows.from_frame(rows)
    if rows.frame.columns.empty:  # an empty file
        return _result(rows, [])
    starts, values, reasons, culprits = _openstef_rows(rows.frame, ["load"], timezone)
    load = values["load"].tolist()

    def reading(i: int) -> dict[str, object]:
        mw = load[i]
        usable = not math.isnan(mw)
        return {
            "meter_id": meter_id,
            "reading_start": starts[i],
            "interval_minutes": OPENSTEF_INTERVAL_MINUTES,
            "energy_kwh": abs(mw) * KWH_PER_MW_QUARTER_HOUR if usable else None,
            "direction": ("export" if mw < 0 else "import") if usable else None,
            "source": OPENSTEF_PRESET,
        }

    raw = {"reading_start": "datetime", "energy_kwh": "load"}
    notes = {"export_intervals": int((values["load"][reasons.isna()] < 0).sum())}
    return _openstef_result(rows, reasons, culprits, reading, raw, notes)


def openstef_weather(
    rows: Rows | pd.DataFrame, station_id: str = OPENSTEF_STATION_ID, timezone: str | None = None
) -> IngestResult:
    """OpenSTEF weather columns -> observations of one station, converted to the contract's units
    (`OPENSTEF_WEATHER`): pressure Pa -> hPa, humidity fraction -> %, rain mm/h -> mm in the
    quarter-hour. The other columns (radiation, clouds, wind direction, ...) have no contract field."""
    rows = rows if isinstance(rows, Rows) else Rows.from_frame(rows)
    if rows.frame.columns.empty:  # an empty file
        return _result(rows, [])
    observed, values, reasons, culprits = _openstef_rows(rows.frame, list(OPENSTEF_WEATHER), timezone)
    converted = {
        field: (values[column] * factor).tolist() for column, (field, factor) in OPENSTEF_WEATHER.items()
    }

    def observation(i: int) -> dict[str, object]:
        measured = {f: None if math.isnan(v[i]) else v[i] for f, v in converted.items()}
        return {"station_id": station_id, "observed_at": observed[i]} | measured

    raw = {"observed_at": "datetime"} | {field: column for column, (field, _) in OPENSTEF_WEATHER.items()}
    return _openstef_result(rows, reasons, culprits, observation, raw)


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
    rows = rows if isinstance(rows, Rows) else Rows.from_frame(rows)
    frame = rows.frame
    skipped = Counter(r.reason for r in rows.rejected)
    if frame.columns.empty:  # an empty file
        return IngestResult(lines=[], rows_read=rows.count, skipped=dict(skipped))
    absent = [c for c in UCI_COLUMNS if c not in frame.columns]
    if absent:
        raise ValueError(f"not a UCI household file: no column {', '.join(absent)}")
    local = pd.to_datetime(frame["Date"] + " " + frame["Time"], format="%d/%m/%Y %H:%M:%S", errors="coerce")
    placed = local.dt.tz_localize(timezone, ambiguous="NaT", nonexistent="NaT")
    power = _numbers(frame["Global_active_power"])  # `?` (missing) is not a number
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
            "reactive": _numbers(frame["Global_reactive_power"]).where(~repeated)[timed],
            "voltage": _numbers(frame["Voltage"]).where(~repeated)[timed],
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
            return openstef_readings(openstef_table(path), meter_id or OPENSTEF_METER_ID, timezone)
        if source == WEATHER_OBSERVATIONS.source:
            return openstef_weather(openstef_table(path), station_id or OPENSTEF_STATION_ID, timezone)
        raise ValueError(f"preset {preset} produces meter_readings or weather_observations, not {source}")
    raise ValueError(f"unknown preset {preset!r}; expected one of {', '.join(PRESETS)}")
