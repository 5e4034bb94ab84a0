"""System states of a grid node from its frequency, as ENTSO-E's SOGL (Art. 18) defines them, and
the events they make.

With the parameters of the node's synchronous area (`areas.py`), at each sample:

- **emergency** (`steady_state_beyond_max`): the steady-state deviation exceeds the maximum
  steady-state frequency deviation. The steady-state deviation is the median deviation over the
  trailing `steady_window_s` (60 s) and over at least `steady_min_samples` (3) samples of the same
  gap-free segment (with 10 s data the last 6 samples, with 1-minute data the last 3): a median, so
  no single noisy sample, however far out, makes an emergency;
- **alert** (`beyond_half_max_steady_state`): |deviation| has continuously exceeded 50 % of the
  maximum steady-state deviation for longer than the alert trigger time; or
  (`beyond_standard_range`): it has continuously exceeded the standard frequency range for longer
  than the time to restore frequency;
- **normal** otherwise.

"Continuously for longer than T" holds at a sample when the run of samples beyond the threshold it
belongs to has lasted more than T by the end of the time the sample stands for (`timeline.py`): with
10 s samples beyond 100 mHz from 10:00:00, Continental Europe's alert starts with the sample at
10:05:00. A gap breaks every run. The state has no memory beyond these rules: it returns to normal
(or to alert from emergency) as soon as they stop holding.

An event is a maximal run of samples in the same alert or emergency state: start, end (the next
sample's time, or after a gap the end of the last sample's time; None while the state still holds at
the node's last sample), the rule that put the node in it and the peak deviation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from metrify_assets.grid.areas import SynchronousArea
from metrify_assets.grid.timeline import Floats, Timeline, run_starts

STATES = ("normal", "alert", "emergency")  # codes 0, 1, 2: ordered by severity
NORMAL, ALERT, EMERGENCY = 0, 1, 2
# Rule codes: 0 none, then one per rule.
RULES = ("", "beyond_half_max_steady_state", "beyond_standard_range", "steady_state_beyond_max")
EVENT_COLUMNS = [
    "grid_node_id",
    "started_at",
    "ended_at",
    "state",
    "rule",
    "area",
    "peak_deviation_hz",
]


@dataclass(frozen=True)
class StateConfig:
    steady_window_s: float = 60.0  # the steady-state deviation is a trailing median over this window...
    steady_min_samples: int = 3  # ... and over at least this many samples


@dataclass(frozen=True)
class StateSeries:
    """Per sample: the steady-state deviation (NaN until enough samples), state code and rule code."""

    steady_hz: Floats
    state: npt.NDArray[np.int8]
    rule: npt.NDArray[np.int8]


def steady_state(deviation: Floats, line: Timeline, config: StateConfig) -> Floats:
    """Trailing median of the deviation over `steady_window_s` and over at least `steady_min_samples`
    samples of the same segment (NaN where the segment has fewer samples so far)."""
    if line.size == 0:
        return np.zeros(0)
    series = pd.Series(deviation, index=pd.to_datetime(line.seconds, unit="s"))
    by_segment = series.groupby(line.segment, sort=False)
    window = pd.Timedelta(seconds=config.steady_window_s)
    over_time = by_segment.rolling(window, closed="right")
    over_count = by_segment.rolling(config.steady_min_samples)
    enough = over_time.count().to_numpy() >= config.steady_min_samples
    return np.where(enough, over_time.median().to_numpy(), over_count.median().to_numpy())


def _sustained(beyond: npt.NDArray[np.bool_], line: Timeline, longer_than_s: float) -> npt.NDArray[np.bool_]:
    """Samples beyond a threshold whose run has lasted more than `longer_than_s` by their end."""
    start = run_starts(beyond, line.segment)
    lasted = line.seconds + line.duration_s - line.seconds[start]
    return beyond & (lasted > longer_than_s)


def evaluate(deviation: Floats, line: Timeline, area: SynchronousArea, config: StateConfig) -> StateSeries:
    """The state of every sample of one node (deviation from nominal in Hz, aligned with `line`)."""
    size = np.abs(deviation)
    steady = steady_state(deviation, line, config)
    emergency = np.abs(np.nan_to_num(steady)) > area.max_steady_state_deviation_hz
    half = _sustained(size > area.alert_deviation_hz, line, area.alert_trigger_s)
    standard = _sustained(size > area.standard_range_hz, line, area.time_to_restore_s)
    state = np.select([emergency, half | standard], [EMERGENCY, ALERT], NORMAL).astype(np.int8)
    rule = np.select([emergency, half, standard], [3, 1, 2], 0).astype(np.int8)
    return StateSeries(steady, state, rule)


def events(
    node: str,
    times: pd.DatetimeIndex,
    deviation: Floats,
    line: Timeline,
    states: StateSeries,
    area: SynchronousArea,
) -> pd.DataFrame:
    """The alert and emergency events of one node (EVENT_COLUMNS), in time order."""
    n = line.size
    if n == 0:
        return pd.DataFrame(columns=EVENT_COLUMNS)
    start = run_starts(states.state.astype(np.int64), line.segment)
    last = np.ones(n, dtype=bool)
    last[:-1] = start[1:] != start[:-1]
    ends = np.flatnonzero(last & (states.state != NORMAL))
    rows = []
    continues = line.continues()
    for k in (int(i) for i in ends):
        first = int(start[k])
        run = slice(first, k + 1)
        peak = deviation[run][int(np.argmax(np.abs(deviation[run])))]
        if k == n - 1:
            ended = None  # the state still holds at the last sample
        elif continues[k]:
            ended = times[k + 1]
        else:  # a gap follows: the event lasted as long as its last sample stands for
            ended = times[k] + pd.Timedelta(seconds=float(line.duration_s[k]))
        rows.append(
            {
                "grid_node_id": node,
                "started_at": times[first],
                "ended_at": ended,
                "state": STATES[states.state[k]],
                "rule": RULES[states.rule[first]],
                "area": area.name,
                "peak_deviation_hz": float(peak),
            }
        )
    return pd.DataFrame(rows, columns=EVENT_COLUMNS)
