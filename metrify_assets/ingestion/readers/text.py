"""Checks shared by the text formats: is a file text at all, is a line UTF-8 or JSON."""

from __future__ import annotations

import codecs
import json
import re
from pathlib import Path


def text_body(path: Path, fmt: str) -> tuple[bytes, bool]:
    """The file's bytes, and whether they are all UTF-8 (else some lines are not: rows to reject).
    A file with NUL bytes is binary (compressed, Parquet, ...), and one whose lines beyond ASCII are
    none of them UTF-8 is in another encoding (Latin-1, say; an ASCII header says nothing): neither
    is `fmt` text, so nothing of it is landed. A file with a UTF-16 byte order mark (Excel's
    "Unicode text") is read as UTF-16 and given as UTF-8; UTF-16 without one is refused with its
    name, not as binary data."""
    body = _utf16_as_utf8(path, path.read_bytes())
    nul = body.find(b"\x00")
    if nul >= 0:
        utf16 = _utf16_without_bom(body)
        if utf16:
            raise ValueError(
                f"{path.name} is not UTF-8 text: it looks like {utf16} without a byte order mark (a NUL "
                f"byte beside every character); convert it first, e.g. `iconv -f {utf16.lower()} -t utf-8`"
            )
        raise ValueError(
            f"{path.name} is not {fmt} text: it holds binary data (a NUL byte at offset {nul}); "
            "is it compressed, or Parquet (--format parquet)?"
        )
    if not utf8_error(body):
        return body, True
    lines = body.split(line_break(body) if fmt == "CSV" else b"\n")  # JSON Lines end in a line feed
    beyond_ascii = [(n, line) for n, line in enumerate(lines, start=1) if not line.isascii()]
    if all(utf8_error(line) for _, line in beyond_ascii):
        number, line = beyond_ascii[0]
        raise ValueError(
            f"{path.name} is not UTF-8 text (line {number}: {utf8_error(line)}); "
            "convert it first, e.g. `iconv -f latin1 -t utf-8`"
        )
    return body, False


def line_break(body: bytes) -> bytes:
    """What ends the lines of a CSV `body`, as what ends its header (its first line break outside
    quotes): a line feed (after carriage returns too: CRLF), or a carriage return alone (classic
    Mac OS; Excel's "CSV (Macintosh)", whose quoted cells break lines with a line feed)."""
    quoted = False
    for found in _QUOTE_OR_BREAK.finditer(body, 0, _HEADER_SCAN):
        if found.group() == b'"':
            quoted = not quoted
        elif not quoted:
            return b"\n" if found.group() == b"\n" or _CRLF.match(body, found.start()) else b"\r"
    return b"\n"


_QUOTE_OR_BREAK = re.compile(rb'["\r\n]')
_CRLF = re.compile(rb"\r+\n")
_HEADER_SCAN = 1 << 16  # bytes; a header longer than that ends in a line feed


_UTF16_BOMS = {codecs.BOM_UTF16_LE: "utf-16-le", codecs.BOM_UTF16_BE: "utf-16-be"}


def _utf16_as_utf8(path: Path, body: bytes) -> bytes:
    """`body` as UTF-8 when it starts with a UTF-16 byte order mark (which declares the encoding),
    else as it is. Raises ValueError for such a file that is not UTF-16 after all."""
    encoding = _UTF16_BOMS.get(body[:2])
    if encoding is None:
        return body
    try:
        return body[2:].decode(encoding).encode()
    except UnicodeDecodeError as err:  # an odd length, half of a surrogate pair
        raise ValueError(
            f"{path.name} starts with a UTF-16 byte order mark but is not UTF-16 text ({err.reason} at "
            f"byte {err.start + 2}); convert it first, e.g. `iconv -f utf-16 -t utf-8`"
        ) from None


def _utf16_without_bom(body: bytes) -> str:
    """ "UTF-16LE" or "UTF-16BE" when `body`'s start reads as mostly ASCII text in UTF-16 (a NUL
    byte at nearly every odd offset and hardly any even one, or the other way round), else ""."""
    sample = body[:4096]
    even, odd = sample[0::2], sample[1::2]
    if len(odd) < 2:
        return ""
    for encoding, high, low in (("UTF-16LE", odd, even), ("UTF-16BE", even, odd)):
        if high.count(0) >= 0.9 * len(high) and low.count(0) <= 0.1 * len(low):
            return encoding
    return ""


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
