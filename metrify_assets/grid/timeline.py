"""How much time each sample of a grid node stands for, and where the node's data has gaps.

A sample stands for the time to the node's next sample, capped at the node's median spacing, so a gap
in the data is not counted as time in any state or outside any range (the last sample stands for the
median spacing). A spacing longer than `GAP_FACTOR` times the median breaks the series into
segments: nothing is "continuous" across a gap (docs/grid.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

GAP_FACTOR = 2.0  # a spacing above this many median spacings is a gap

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Timeline:
    """The sample times of one node (sorted, distinct) with what each sample stands for."""

    seconds: Floats  # seconds since the first sample
    spacing_s: float | None  # median spacing; None with fewer than two samples
    duration_s: Floats  # time each sample stands for
    segment: Ints  # id of the gap-free run of samples each sample belongs to

    @property
    def size(self) -> int:
        return len(self.seconds)

    def continues(self) -> npt.NDArray[np.bool_]:
        """Per sample: the next sample exists and is in the same segment."""
        out = np.zeros(self.size, dtype=bool)
        out[:-1] = self.segment[1:] == self.segment[:-1]
        return out


def timeline(times: pd.Series | pd.DatetimeIndex) -> Timeline:
    """The timeline of one node's sample times (tz-aware or naive UTC, sorted ascending, distinct)."""
    ns = pd.DatetimeIndex(times).as_unit("ns").asi8.astype(np.int64)
    if len(ns) and (np.diff(ns) <= 0).any():
        raise ValueError("sample times must be sorted and distinct")
    seconds = (ns - (ns[0] if len(ns) else 0)).astype(np.float64) / 1e9
    gaps = np.diff(seconds)
    if len(gaps) == 0:
        return Timeline(seconds, None, np.zeros(len(seconds)), np.zeros(len(seconds), dtype=np.int64))
    spacing = float(np.median(gaps))
    duration = np.append(np.minimum(gaps, spacing), spacing)
    breaks = np.concatenate([[False], gaps > GAP_FACTOR * spacing])
    return Timeline(seconds, spacing, duration, np.cumsum(breaks).astype(np.int64))


def run_starts(values: npt.NDArray[Any], segment: Ints) -> Ints:
    """For each sample, the index of the first sample of its run: consecutive samples of one segment
    with the same value."""
    n = len(values)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    breaks = np.ones(n, dtype=bool)
    breaks[1:] = (values[1:] != values[:-1]) | (segment[1:] != segment[:-1])
    return np.maximum.accumulate(np.where(breaks, np.arange(n), 0)).astype(np.int64)
