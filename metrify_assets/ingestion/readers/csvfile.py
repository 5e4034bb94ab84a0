"""CSV files: pandas' C parser where it can be trusted with every row, Python's csv module where not."""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from metrify_assets.ingestion.readers.result import Rejected, Rows
from metrify_assets.ingestion.readers.text import first_surrogate, line_break, not_json, text_body


def read_csv(path: Path, sep: str = ",") -> Rows:
    """A CSV file with a header; values as text, so mapping decides their types. A row is named by
    its (first) line in the file, the header being line 1; blank lines are not rows. A row that
    cannot be a record is rejected and landed in a form the decoder quarantines: more fields than
    the header (`extra_fields`, landed as a JSON array of its fields), a quote that never closes (`unclosed_quote`: its line as given, and
    reading goes on at the next line), bytes that are not UTF-8 (`not_utf8`, a JSON object with them
    as lone surrogates, which the decoder refuses). Lines end as the header does (`line_break`): a
    line break of the other kind inside a line, quoted or not, is part of its field."""
    body, utf8 = text_body(path, "CSV")
    brk = line_break(body)
    other = _other_break(body, brk)
    try:
        # pandas breaks a row at any line break outside quotes: a file with one of the other kind
        # inside a line is read exactly.
        frame = None if other else _pandas_csv(body, sep)
    except pd.errors.EmptyDataError:
        return Rows(pd.DataFrame(), [], [])
    rows = None if frame is None else _on_lines(frame, body, brk, sep)
    if rows is None:
        rows = _exact_csv(body, sep, other)
    return rows if utf8 else _without_mangled(rows)


def _on_lines(frame: pd.DataFrame, body: bytes, brk: bytes, sep: str) -> Rows | None:
    """The rows pandas read, each named by its line in the file (`line 12`: the header is line 1, and
    blank lines, which are no rows, count as lines), as an editor shows it, when each row is one line
    that is not blank (`_blank_chars`, pandas' rule). None where pandas cannot be trusted with the rows: a
    row over several lines, which only a quote makes (a quoted newline, or a stray quote that pandas
    reads up to the next one, lines later); without a quote they are named by their place (`row 3`)."""
    blank = _blank_chars(sep).encode()
    filled = [n for n, line in enumerate(body.split(brk), start=1) if line.strip(blank)]
    if len(filled) == len(frame) + 1:
        return Rows(frame.reset_index(drop=True), list(range(len(frame))), [f"line {n}" for n in filled[1:]])
    return None if b'"' in body else Rows.from_frame(frame)


def _blank_chars(sep: str) -> str:
    """What a blank line holds, as pandas skips one: spaces and tabs (and its line break), but not the
    separator, which makes a line of empty fields a row (a tab in a tab-separated file); a form feed
    or a vertical tab is a value, not white space, to pandas."""
    return " \t\r\n".replace(sep, "")


DELIMITERS = {"tab": "\t", "\\t": "\t"}  # names a shell passes easily, for --delimiter


def delimiter(text: str) -> str:
    """The field separator `--delimiter` names: one character (`,`, `;`, `|`), or a tab as `tab`
    or `\\t`. Raises ValueError for anything else (a quote or a line break cannot separate fields)."""
    sep = DELIMITERS.get(text.lower(), text)
    if len(sep) != 1 or sep in '"\r\n':
        raise ValueError(f"--delimiter takes one character (`,`, `;`, `|`) or `tab`, not {text!r}")
    return sep


def separator_hint(columns: list[str], sep: str) -> str:
    """For a header read as one column that holds another usual separator: the file is almost surely
    separated by that one, so the hint says how to read it ("" otherwise)."""
    if len(columns) != 1:
        return ""
    for other, name, option in ((";", "';'", "';'"), ("\t", "tab", "tab"), ("|", "'|'", "'|'")):
        if other != sep and other in str(columns[0]):
            return (
                f"the header is one column holding {name}: the file looks {name}-separated, not "
                f"{'tab' if sep == chr(9) else repr(sep)}-separated; read it with --delimiter {option}"
            )
    return ""


def _pandas_csv(body: bytes, sep: str) -> pd.DataFrame | None:
    """The fast path: pandas' C parser, or None where it cannot be trusted with every row (it refuses
    a row with extra fields or an unclosed quote, and takes one extra field on the first row for an
    index column; a stray quote that it reads up to the next quote, lines later, is `_on_lines`')."""
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


def _other_break(body: bytes, brk: bytes) -> str:
    """The line break of the other kind than `brk` (`line_break`) where `body` holds one inside a
    line, else "": in a file whose lines end in a line feed, a carriage return with text after it
    on its line (those before a line feed, CRLF or CR CR LF as a CRLF file written again in text
    mode has, or at the end of the file end a line); in one whose lines end in a carriage return, a
    line feed neither after one (CRLF ends a line there too) nor at the end of the file."""
    if brk == b"\n":
        return "\r" if b"\r" in body and _LONE_CR.search(body) else ""  # ~2 % of pandas' time
    return "\n" if b"\n" in body and _LONE_LF.search(body) else ""


_LONE_CR = re.compile(rb"\r[^\r\n]")
_LONE_CRS = re.compile(r"\r+(?=[^\r\n])")
_LONE_LF = re.compile(rb"(?<!\r)\n(?!\Z)")
_LONE_LFS = re.compile(r"(?<!\r)\n(?!\Z)")

# Ends the text fed to `csv.reader`: inside a field it shows a quote that never closed (no text file
# holds a NUL: `text_body` refuses those).
_END = "\x00"
# Stand for a carriage return and a line feed inside a line in the text fed to `csv.reader`, which
# ends a row at either outside quotes (or raises "new-line character seen in unquoted field"). No
# decoded text holds them: `surrogateescape` gives U+DC80-U+DCFF for bytes that are not UTF-8.
_CR, _LF = "\udc0d", "\udc0a"


def _restored(text: str) -> str:
    """`text` with the carriage returns and line feeds `_CR` and `_LF` stand for."""
    return text.replace(_CR, "\r").replace(_LF, "\n")


def _exact_csv(body: bytes, sep: str, other: str) -> Rows:
    """Every row with Python's csv module, for a file pandas refuses: a row with more fields than
    the header or an unclosed quote is rejected, the others are read as pandas would, but for a
    line break of the other kind inside a line (`other`, from `_other_break`): it stays in its field (pandas
    broke the row there)."""
    text = body.decode("utf-8-sig", errors="surrogateescape")
    if other == "\r":
        text = _LONE_CRS.sub(lambda crs: _CR * len(crs.group()), text)
    elif other == "\n":
        text = _LONE_LFS.sub(_LF, text)
    lines = list(io.StringIO(text, newline=""))  # the breaks left end lines
    # csv refuses a field over 128 KiB (csv.Error: a traceback); pandas takes any, so while reading
    # this file a field may be as long as the file.
    limit = csv.field_size_limit()
    csv.field_size_limit(max(limit, len(body)))
    try:
        return _exact_rows(lines, sep, other)
    finally:
        csv.field_size_limit(limit)


def _exact_rows(lines: list[str], sep: str, other: str = "") -> Rows:
    """The rows of `lines`; `other`: some hold `_CR` or `_LF` for that line break (`_other_break`)."""
    parsed = _csv_rows(lines, sep, other)
    top = next(parsed, None)
    if top is None:
        return Rows(pd.DataFrame(), [], [])
    if top[1] is None:
        line = _restored(lines[top[0]]).rstrip()
        raise ValueError(f"the header of the CSV has a quote that never closes: {line!r}")
    header = _column_names(top[1])
    kept: list[list[str | None]] = []
    positions: list[int] = []
    rejected: list[Rejected] = []
    lines_of: list[str] = []
    for position, (first, fields) in enumerate(parsed):
        where = f"line {first + 1}"
        if fields is None:
            raw = (
                _restored(lines[first].rstrip("\r\n"))
                .encode(errors="surrogateescape")
                .decode(errors="backslashreplace")
            )
            rejected.append(
                Rejected(position, where, "unclosed_quote", "a quote never closes", not_json(raw))
            )
        elif len(fields) > len(header):
            detail = f"{len(fields)} fields, the header has {len(header)}"
            if other and any(other in field for field in fields):
                name = "a carriage return" if other == "\r" else "a line feed"
                detail += f"; {name} inside the row: are line endings mixed?"
            rejected.append(Rejected(position, where, "extra_fields", detail, json.dumps(fields)))
        else:
            kept.append([v if v else None for v in fields] + [None] * (len(header) - len(fields)))
            positions.append(position)
            lines_of.append(where)
    frame = pd.DataFrame(kept, columns=header, dtype=object)
    return Rows(frame, positions, lines_of, rejected)


def _csv_rows(lines: list[str], sep: str, other: str = "") -> Iterator[tuple[int, list[str] | None]]:
    """The index of each row's first line in `lines`, and its fields, or None for a row whose quote
    never closes (reading goes on at the next line: the quote was a slip, not a field over lines). A
    row over several lines is such a slip too, a stray quote that a quote lines later closed, when
    it has fewer fields than the header or text after that closing quote (`"a` and `"b` in two
    rows). A blank line is no row, as pandas has it; `""` or `" "` is one. With `other`, `_CR` and
    `_LF` in a field are given back as the line break they stand for."""
    start = 0
    width: int | None = None  # the header's fields
    blank = _blank_chars(sep)
    while start < len(lines):
        rest = map(lines.__getitem__, range(start, len(lines)))  # islice would walk the lines to start
        reader = csv.reader(itertools.chain(rest, [_END]), delimiter=sep)
        consumed = 0
        for fields in reader:
            first, consumed = start + consumed, reader.line_num
            if fields == [_END]:
                return
            span = start + consumed - first  # lines
            if span == 1 and not lines[first].strip(blank):
                continue  # told by its text: `""` gives the fields of a blank line, [""]
            if width is None:
                width = len(fields)
            swallowed = span > 1 and (
                len(fields) < width or not _closes_cleanly(lines[first : first + span], sep)
            )
            if fields and (_END in fields[-1] or swallowed):
                yield first, None
                start = first + 1
                break
            yield first, [_restored(field) for field in fields] if other else fields
        else:
            return


def _closes_cleanly(lines: list[str], sep: str) -> bool:
    """Whether each quoted field of a row is followed by a separator or the end of its line, as a
    field quoted over lines is (csv's strict mode; pandas, like csv by default, reads on)."""
    try:
        for _ in csv.reader(lines, delimiter=sep, strict=True):
            pass
    except csv.Error:
        return False
    return True


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
    # Cell by cell, not a pd.Series per row as `apply(axis=1)` builds.
    mangled = frame.map(_mangled).any(axis=1).to_numpy(dtype=bool)
    if not mangled.any():
        return rows
    rejected = list(rows.rejected)
    for i in np.flatnonzero(mangled):
        row = {str(k): v for k, v in frame.iloc[i].items() if not pd.isna(v)}
        column = next(k for k, v in row.items() if _mangled(v))
        escaped = first_surrogate(row[column])  # surrogateescape: U+DC00 + byte
        detail = f"byte 0x{ord(escaped) - 0xDC00:02x} in column {column!r}"
        rejected.append(Rejected(rows.positions[i], rows.locations[i], "not_utf8", detail, json.dumps(row)))
    keep = ~mangled
    return Rows(
        frame[keep].reset_index(drop=True),
        [p for p, k in zip(rows.positions, keep, strict=True) if k],
        [w for w, k in zip(rows.locations, keep, strict=True) if k],
        sorted(rejected, key=lambda r: r.position),
    )


def _mangled(value: object) -> bool:
    """Whether a text read with `surrogateescape` held bytes that are not UTF-8."""
    return isinstance(value, str) and bool(first_surrogate(value))
