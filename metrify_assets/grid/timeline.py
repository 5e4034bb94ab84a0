"""How much time each sample of a grid node stands for, and where the node's data has gaps.

The node's *cadence* at a sample is local: the median of the `CADENCE_SPACINGS` spacings up to and
including the one from that sample to the next (at the start of a series, the first
`CADENCE_SPACINGS`; the last sample takes the cadence of the one before). A node that switches from
1 s to 10 s sampling is judged by 10 s spacings a few samples after the switch, whatever else a run
read, so a day's figures do not depend on the days read with it (docs/grid.md).

A sample stands for the time to the node's next sample, capped at its cadence, so a gap in the data
is not counted as time in any state or outside any range (the last sample stands for its cadence). A
spacing longer than `GAP_FACTOR` times the cadence breaks the series into segments: nothing is
"continuous" across a gap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

GAP_FACTOR = 2.0  # a spacing above this many times the cadence is a gap
CADENCE_SPACINGS = 9  # the cadence is the median of this many consecutive spacings

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Timeline:
    """The sample times of one node (sorted, distinct) with what each sample stands for."""

    seconds: Floats  # seconds since the first sample
    cadence_s: Floats  # local median spacing at each sample; NaN with fewer than two samples
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


def cadence(spacings: Floats, window: int = CADENCE_SPACINGS) -> Floats:
    """Per spacing, the median of the `window` spacings ending with it; the first `window - 1` take
    the median of the first `window` (of all of them when there are fewer)."""
    if len(spacings) == 0:
        return np.zeros(0)
    if len(spacings) <= window:
        return np.full(len(spacings), float(np.median(spacings)))
    rolling = pd.Series(spacings).rolling(window).median().to_numpy(copy=True)
    rolling[: window - 1] = rolling[window - 1]
    return rolling


def timeline(times: pd.Series | pd.DatetimeIndex) -> Timeline:
    """The timeline of one node's sample times (tz-aware or naive UTC, sorted ascending, distinct)."""
    ns = pd.DatetimeIndex(times).as_unit("ns").asi8.astype(np.int64)
    if len(ns) and (np.diff(ns) <= 0).any():
        raise ValueError("sample times must be sorted and distinct")
    seconds = (ns - (ns[0] if len(ns) else 0)).astype(np.float64) / 1e9
    gaps = np.diff(seconds)
    if len(gaps) == 0:
        n = len(seconds)
        return Timeline(seconds, np.full(n, np.nan), np.zeros(n), np.zeros(n, dtype=np.int64))
    local = cadence(gaps)
    duration = np.append(np.minimum(gaps, local), local[-1])
    breaks = np.concatenate([[False], gaps > GAP_FACTOR * local])
    return Timeline(seconds, np.append(local, local[-1]), duration, np.cumsum(breaks).astype(np.int64))


def run_starts(values: npt.NDArray[Any], segment: Ints) -> Ints:
    """For each sample, the index of the first sample of its run: consecutive samples of one segment
    with the same value."""
    n = len(values)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    breaks = np.ones(n, dtype=bool)
    breaks[1:] = (values[1:] != values[:-1]) | (segment[1:] != segment[:-1])
    return np.maximum.accumulate(np.where(breaks, np.arange(n), 0)).astype(np.int64)
