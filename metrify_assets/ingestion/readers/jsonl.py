"""JSON Lines files: one record object, or `{"records": [...]}`, per line."""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from metrify_assets.ingestion.landing import landed_messages
from metrify_assets.ingestion.readers.result import Rejected, Rows
from metrify_assets.ingestion.readers.text import NOT_JSON, not_json, parsed_json, text_body, utf8_error

BOM = b"\xef\xbb\xbf"  # UTF-8's byte order mark


@dataclass
class _Gathered:
    """Rows in input order as they are read: objects to map, and rejected rows with their lines."""

    objects: list[dict[str, Any]] = field(default_factory=list)
    locations: list[str] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    notes: Counter[str] = field(default_factory=Counter)

    def keep(self, location: str, item: dict[str, Any]) -> None:
        self.positions.append(len(self.objects) + len(self.rejected))
        self.locations.append(location)
        self.objects.append(item)

    def reject(self, location: str, reason: str, detail: str, line: str) -> None:
        position = len(self.objects) + len(self.rejected)
        self.rejected.append(Rejected(position, location, reason, detail, line))

    def rows(self) -> Rows:
        # As objects: values keep their JSON types, and mapping decides (no inference of dates or
        # text dtypes). The index counts objects even when none has a key (`{}`).
        keys = dict.fromkeys(key for o in self.objects for key in o)
        frame = pd.DataFrame(
            {key: pd.Series([o.get(key) for o in self.objects], dtype=object) for key in keys},
            index=pd.RangeIndex(len(self.objects)),
        )
        return Rows(frame, self.positions, self.locations, self.rejected, dict(self.notes))


def read_jsonl(path: Path) -> Rows:
    """JSON Lines, one line at a time: a line is a record object, or `{"records": [...]}` whose
    objects are rows (as the pipeline reads a message). A line that is empty, not JSON, not UTF-8
    or not an object is rejected with its line number and landed as given (invalid bytes escaped as
    `\\xNN`), so the pipeline quarantines it as malformed. A UTF-8 byte order mark and blank lines
    at the end of the file are not rows; `{"records": []}` holds none (noted, not landed)."""
    body = text_body(path, "JSON Lines")[0].removeprefix(BOM)
    _refuse_one_document(path, body)
    gathered = _Gathered()
    lines = landed_messages(body.rstrip(b"\r\n\t ") + b"\n") if body.strip() else []
    for number, raw in enumerate(lines, start=1):
        # Each line parsed once: json reads UTF-8 bytes (and refuses others), but would take a byte
        # order mark that orjson refuses; `\u` may be half of a surrogate pair.
        parsed = NOT_JSON if raw.startswith(BOM) else parsed_json(raw)
        if type(parsed) is dict and "records" not in parsed and b"\\u" not in raw:
            gathered.keep(f"line {number}", parsed)
        else:
            _read_line(gathered, f"line {number}", raw, parsed)
    return gathered.rows()


def _read_line(gathered: _Gathered, location: str, raw: bytes, parsed: object) -> None:
    """One line's rows into `gathered` (`parsed`: the line as JSON, or NOT_JSON): its object, its
    records, or the line rejected."""
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        escaped = raw.decode(errors="backslashreplace")
        gathered.reject(location, "not_utf8", utf8_error(raw), not_json(escaped))
        return
    if not text.strip():
        gathered.reject(location, "empty_line", "", text)
        return
    if parsed is NOT_JSON:
        gathered.reject(location, "invalid_json", _json_error(text), text)
        return
    not_text = _not_text(text, parsed)
    if not_text:
        gathered.reject(location, "invalid_json", not_text, text)
    elif not isinstance(parsed, dict):
        gathered.reject(location, "not_an_object", "null" if parsed is None else type(parsed).__name__, text)
    elif "records" not in parsed:
        gathered.keep(location, parsed)
    elif not isinstance(parsed["records"], list):
        gathered.reject(location, "records_not_a_list", "", text)
    elif not parsed["records"]:
        gathered.notes["lines_without_records"] += 1
    else:
        for offset, item in enumerate(parsed["records"], start=1):
            if isinstance(item, dict):
                gathered.keep(f"{location} record {offset}", item)
            else:
                gathered.reject(
                    f"{location} record {offset}", "not_an_object", type(item).__name__, json.dumps(item)
                )


def _json_error(text: str) -> str:
    """Why `text` is not JSON, for the message."""
    try:
        json.loads(text)
    except json.JSONDecodeError as err:
        return f"column {err.colno}: {err.msg}"
    except RecursionError:
        return "nested too deep"
    return ""


def _not_text(text: str, parsed: object) -> str:
    """Why a line whose `\\uD800`-`\\uDFFF` escapes json took is not text, or "": its parsed values
    hold a half of a surrogate pair (json takes one; UTF-8, pandas and the decoder's orjson do not),
    or they are nested deeper than json writes from here (it parsed them a call up) to check."""
    escape = _SURROGATE_ESCAPE.search(text)
    if escape is None:
        return ""
    try:
        json.dumps(parsed, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return f"lone surrogate {escape.group()}"
    except RecursionError:
        return "nested too deep"
    return ""


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _refuse_one_document(path: Path, body: bytes) -> None:
    """Refuse one JSON document that is not a message: a pretty-printed one (read as JSON Lines, each
    of its lines would be an invalid record, landed and quarantined for nothing), or an array on one
    line (one not_an_object row for all its records)."""
    lines = body.strip().split(b"\n", 1)
    if len(lines) > 1 and parsed_json(lines[0]) is not NOT_JSON:  # JSON Lines
        return
    if len(lines) == 1 and not lines[0].startswith(b"["):  # one line: a message, or not JSON
        return
    document = parsed_json(body)
    if document is NOT_JSON:
        return
    if isinstance(document, list):
        shape, hint = "a JSON array", f"`jq -c '.[]' {path.name} > {path.stem}.jsonl`"
    else:
        shape, hint = "one JSON document over several lines", f"`jq -c . {path.name} > {path.stem}.jsonl`"
    raise ValueError(
        f"{path.name} is {shape}, not JSON Lines (one record per line); convert it first, e.g. {hint}"
    )
