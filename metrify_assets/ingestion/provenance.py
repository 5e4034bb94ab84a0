"""Where a landing batch came from: the file `metrify ingest` read, and the place in it of each record.

`metrify ingest` writes it beside each landing file (`<landing file>.origin.json`), before the landing
file itself, so the pipeline's run of the file always finds it; the run keeps it in the batch's ledger
row (`source_file`, `source_lines`: migration 0034), where `metrify dlq` and `metrify status` read it.
A landing file's line i is the batch's record i (each line `metrify ingest` lands is one record or
one rejected row), so record i's place is the i-th. The places are kept as runs: consecutive records
whose places share a text and count up by one (`line 12`, `line 13`, ...; `line 2 record 1`, `line 2
record 2`; `row 3`), each `[text, first number, records]`, so a CSV without blank lines or cells over
several lines is one run whatever its length. Imports nothing heavy: `metrify dlq list` reads it.
"""

from __future__ import annotations

import json
import logging
import os
import re
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path
from typing import Any

ORIGIN_SUFFIX = ".origin.json"

log = logging.getLogger(__name__)
Run = tuple[str, int | None, int]  # text, first number (None: a place without one), records
_NUMBERED = re.compile(r"^(.*?)(\d+)$")


def runs(places: Sequence[str]) -> list[Run]:
    """`places` (one per record, in order) as runs of places counting up by one."""
    out: list[Run] = []
    for place in places:
        match = _NUMBERED.match(place)
        if match is None:
            out.append((place, None, 1))
            continue
        text, number = match.group(1), int(match.group(2))
        if out:
            last_text, first, count = out[-1]
            if last_text == text and first is not None and first + count == number:
                out[-1] = (text, first, count + 1)
                continue
        out.append((text, number, 1))
    return out


class Places:
    """The place of each record of a batch, from its runs: found by bisection, so naming every dead
    letter of a batch whose runs are many (a JSON Lines file of `records` lists: a run per line) costs
    a logarithm each, not a walk over the runs."""

    def __init__(self, lines: Sequence[Sequence[Any]] | None, records_in: int) -> None:
        """`lines`: the batch's runs; `records_in`: its records. Runs that do not hold one place a
        record (a batch not landed line for record) name none: no place can be trusted then."""
        self._runs = [(str(text), None if first is None else int(first)) for text, first, _ in lines or ()]
        self._starts = list(accumulate((int(run[2]) for run in lines or ()), initial=0))
        self._known = bool(self._runs) and self._starts[-1] == records_in

    def at(self, index: int) -> str | None:
        """Where record `index` was in its file (`line 12`), or None when not known."""
        if not self._known or not 0 <= index < self._starts[-1]:
            return None
        run = bisect_right(self._starts, index) - 1
        text, first = self._runs[run]
        return text if first is None else f"{text}{first + index - self._starts[run]}"


@dataclass(frozen=True)
class Origin:
    """The file a landing file's records were read from, as the user named it to `metrify ingest`, and
    the runs of its records' places (None: not known, e.g. a preset's records, which are buckets of
    rows)."""

    file: str
    lines: list[Run] | None = None


def origin_path(landing_path: Path) -> Path:
    """The origin file beside a landing file."""
    return landing_path.with_name(landing_path.name + ORIGIN_SUFFIX)


def write_origin(landing_path: Path, origin: Origin) -> None:
    """Write the origin of the landing file to be written at `landing_path`, atomically."""
    body = json.dumps({"file": origin.file, "lines": origin.lines}).encode()
    path = origin_path(landing_path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(body)
    tmp.replace(path)


def read_origin(landing_path: Path) -> Origin | None:
    """The origin written beside a landing file, or None when there is none (`metrify simulate`, the
    API and files landed before origins were kept write none). An origin is where the records came
    from, never a reason to hold them: a file that is not one (cut short, edited by hand) is logged
    as a warning and read as none, and its batch is ingested without places."""
    path = origin_path(landing_path)
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except ValueError as err:
        log.warning(
            "%s is not an origin file (%s): its batch is ingested without its file and lines", path, err
        )
        return None
    file = data.get("file") if isinstance(data, dict) else None
    lines = data.get("lines") if isinstance(data, dict) else None
    if not isinstance(file, str) or not (
        lines is None or (isinstance(lines, list) and all(map(_is_run, lines)))
    ):
        log.warning(
            "%s is not an origin file ({'file': text, 'lines': [[text, number or null, count], ...] or null}): "
            "its batch is ingested without its file and lines",
            path,
        )
        return None
    return Origin(file, None if lines is None else [(t, f, n) for t, f, n in lines])


def _is_run(value: object) -> bool:
    """Whether `value` is a `Run` as JSON holds it: [text, a number or null, a count]."""
    if not (isinstance(value, list) and len(value) == 3):
        return False
    text, first, count = value
    return (
        isinstance(text, str)
        and (first is None or (type(first) is int and first >= 0))
        and type(count) is int
        and count >= 0
    )
