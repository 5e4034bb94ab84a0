"""Additive totals over a growing table, read incrementally: what makes a scrape's cost independent
of the history held while its counters stay exactly what the table says after a restart.

Rows carry an immutable timestamp (when they were first written: a rewrite keeps it). A row older
than the lookback window has *settled*: its transaction committed long ago and it is folded into the
totals, never read or added again, even if it is rewritten later. Rows inside the window are kept one
by one, by id, and read again on every scrape, so a row that commits late (its timestamp is its
transaction's start) or is rewritten in place (same id) is counted once; what it adds to each key is
the largest value read for it, so no total ever goes down. The first scrape after a start sums the
settled rows in the database (one aggregate query) instead of reading them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

Key = Hashable
Contribution = Mapping[Key, float]


@dataclass
class WindowedTally:
    """Totals of `settled` rows (before `settled_until`) plus each recent row's contribution."""

    settled: defaultdict[Key, float] = field(default_factory=lambda: defaultdict(float))
    settled_until: datetime | None = None
    recent: dict[str, tuple[datetime, Contribution]] = field(default_factory=dict)

    @property
    def seeded(self) -> bool:
        return self.settled_until is not None

    def seed(self, totals: Iterable[tuple[Key, float]], until: datetime) -> None:
        """The aggregate of every row before `until` (the first scrape's one query over history)."""
        self.settled = defaultdict(float)
        for key, value in totals:
            self.settled[key] += value
        self.settled_until = until
        self.recent = {}

    def update(self, rows: Iterable[tuple[str, datetime, Contribution]], cutoff: datetime) -> None:
        """Take the rows read since `settled_until` (a row seen before keeps, per key, the larger of
        its contributions; one already settled is skipped), then fold those older than `cutoff` into
        the settled totals."""
        for row_id, at, contribution in rows:
            if self.settled_until is not None and at < self.settled_until:
                continue
            seen = self.recent.get(row_id)
            self.recent[row_id] = (at, contribution if seen is None else _larger(seen[1], contribution))
        if self.settled_until is None or cutoff > self.settled_until:
            for row_id, (at, contribution) in list(self.recent.items()):
                if at < cutoff:
                    _add(self.settled, contribution)
                    del self.recent[row_id]
            self.settled_until = cutoff

    def totals(self) -> defaultdict[Key, float]:
        """Every key's total (0 for a key never seen)."""
        out = defaultdict(float, self.settled)
        for _, contribution in self.recent.values():
            _add(out, contribution)
        return out


def _larger(before: Contribution, now: Contribution) -> Contribution:
    return {key: max(before.get(key, 0.0), now.get(key, 0.0)) for key in {*before, *now}}


def _add(totals: defaultdict[Key, float], contribution: Contribution) -> None:
    for key, value in contribution.items():
        totals[key] += value
