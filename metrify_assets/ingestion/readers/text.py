"""Checks shared by the text formats: is a file text at all, is a line UTF-8 or JSON."""

from __future__ import annotations

import json
import re
from pathlib import Path


def text_body(path: Path, fmt: str) -> tuple[bytes, bool]:
    """The file's bytes, and whether they are all UTF-8 (else some lines are not: rows to reject).
    A file with NUL bytes is binary (compressed, Parquet, ...), and one whose lines beyond ASCII are
    none of them UTF-8 is in another encoding (Latin-1, say; an ASCII header says nothing): neither
    is `fmt` text, so nothing of it is landed."""
    body = path.read_bytes()
    nul = body.find(b"\x00")
    if nul >= 0:
        raise ValueError(
            f"{path.name} is not {fmt} text: it holds binary data (a NUL byte at offset {nul}); "
            "is it compressed, or Parquet (--format parquet)?"
        )
    if not utf8_error(body):
        return body, True
    beyond_ascii = [(n, line) for n, line in enumerate(body.split(b"\n"), start=1) if not line.isascii()]
    if all(utf8_error(line) for _, line in beyond_ascii):
        number, line = beyond_ascii[0]
        raise ValueError(
            f"{path.name} is not UTF-8 text (line {number}: {utf8_error(line)}); "
            "convert it first, e.g. `iconv -f latin1 -t utf-8`"
        )
    return body, False


def utf8_error(text: bytes) -> str:
    """Where `text` stops being UTF-8, for a message; "" when it is UTF-8."""
    try:
        text.decode()
    except UnicodeDecodeError as err:
        return f"byte 0x{text[err.start]:02x} at column {err.start + 1}"
    return ""


def first_surrogate(text: str) -> str:
    """The first lone surrogate in `text`, "" for none: a byte that was not UTF-8 (read with
    `surrogateescape`: U+DC00 + the byte) or half of a pair (a JSON `\\ud800` escape), so `text`
    is not UTF-8 text and neither UTF-8 nor strict JSON can carry it."""
    if text.isascii():  # most text: no search
        return ""
    found = _SURROGATE.search(text)
    return found.group() if found else ""


_SURROGATE = re.compile("[\ud800-\udfff]")


def parsed_json(text: str | bytes) -> object:
    """`text` parsed as JSON, or `NOT_JSON` (json, not orjson: it keeps an integer beyond 64 bits as
    written; UnicodeDecodeError is a ValueError)."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return NOT_JSON


NOT_JSON = object()


def not_json(text: str) -> str:
    """`text` as a landing line the decoder rejects as invalid JSON, or as a JSON string (rejected as
    not an object) in the rare case that escaping its invalid bytes made it valid JSON."""
    return text if parsed_json(text) is NOT_JSON else json.dumps(text)
