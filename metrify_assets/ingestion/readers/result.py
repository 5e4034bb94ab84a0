"""What reading a file gives: its rows (`Rows`), each mapped to a landing line (`Mapped`), and
the lines in input order with counts and examples (`IngestResult`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd

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
    # Where each line's row was in the file ("line 12", "row 3"), one per line; empty when not known (a
    # preset's buckets of rows): the landing file's origin keeps them for `metrify dlq`.
    places: list[str] = field(default_factory=list)

    @property
    def records(self) -> int:
        """Lines that are records (the rest are rejected rows)."""
        return len(self.lines) - sum(self.rejected.values())


@dataclass(frozen=True)
class Problem:
    """Why a mapped row is not a record, and the value that gave the reason (for the message)."""

    reason: str
    detail: str = ""


@dataclass(frozen=True)
class Mapped:
    """The landing line of each mapped row, in the order of `Rows.frame`, and the problems of those
    that are not records (by their index there): lines the pipeline's decoder quarantines."""

    lines: list[str] = field(default_factory=list)
    problems: dict[int, Problem] = field(default_factory=dict)


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
    """A file's rows: `frame` holds those to map (at `positions`, found at `locations`: "row 3", "line 2 record 1"); `rejected` the rest."""

    frame: pd.DataFrame
    positions: list[int]
    locations: list[str]
    rejected: list[Rejected] = field(default_factory=list)
    notes: dict[str, int] = field(default_factory=dict)  # facts about the file, e.g. lines without records

    @property
    def count(self) -> int:
        return len(self.positions) + len(self.rejected)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> Rows:
        """Every row of `frame`, named `row 1`, `row 2`, ..."""
        return cls(
            frame.reset_index(drop=True), list(range(len(frame))), [f"row {i + 1}" for i in range(len(frame))]
        )


def as_rows(rows: Rows | pd.DataFrame) -> Rows:
    """`rows`, or every row of a frame (`Rows.from_frame`): the presets and the mapping take either."""
    return rows if isinstance(rows, Rows) else Rows.from_frame(rows)


def merged(rows: Rows, mapped: Mapped, notes: Mapping[str, int] | None = None) -> IngestResult:
    """The lines of mapped rows and rejected ones merged back into input order, with counts and the
    first examples."""
    lines = [""] * rows.count
    places = [""] * rows.count
    for position, line, where in zip(rows.positions, mapped.lines, rows.locations, strict=True):
        lines[position] = line
        places[position] = where
    for r in rows.rejected:
        lines[r.position] = r.line
        places[r.position] = r.where
    rejected = sorted(
        [
            *(
                Rejected(rows.positions[i], rows.locations[i], p.reason, p.detail, mapped.lines[i])
                for i, p in mapped.problems.items()
            ),
            *rows.rejected,
        ],
        key=lambda r: r.position,
    )
    return IngestResult(
        lines=lines,
        rows_read=rows.count,
        rejected=dict(sorted(Counter(r.reason for r in rejected).items())),
        notes={**rows.notes, **(notes or {})},
        examples=[r.example for r in rejected[:MAX_EXAMPLES]],
        places=places,
    )
