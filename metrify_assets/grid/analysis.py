"""Raw grid samples -> per-sample states, stability figures and risk per node and hour, and events.

Pure: `store.py` reads the samples and writes what this returns. Each node gets the parameters of
its synchronous area (`GridConfig.area_of`).

Each sample's validity is decided once, here, before anything is computed from the node's frequency
(`excluded`): a sample awaiting review (`SUSPECT`: the record rules flagged its frequency and no
reviewer approved it) that its neighbours do not corroborate is a sensor fault, left out as if it had
never arrived: the timeline, the states, the events and the frequency figures are those of the other
samples, and it counts only in `sample_count`, `excluded_samples` and the voltage and load figures.
docs/grid.md#samples-awaiting-review says why.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pandas as pd

from metrify_assets.grid.areas import DEFAULT_AREA, SynchronousArea, area
from metrify_assets.grid.risk import RISK_COLUMNS, RiskConfig, risk
from metrify_assets.grid.stability import FIGURE_COLUMNS, SAMPLE_COLUMNS, VoltageConfig, rocof, window_figures
from metrify_assets.grid.states import EVENT_COLUMNS, NORMAL, STATES, StateConfig, evaluate, events
from metrify_assets.grid.timeline import Floats, Timeline, timeline

INPUT_COLUMNS = ["grid_node_id", "measured_at", "frequency_hz", "voltage_v", "load_mw", "capacity_mw"]
END_COLUMNS = ["grid_node_id", "last_sample_at", "state", "steady_hz"]
SUSPECT = "suspect"  # optional input column: the frequency is flagged and awaits a reviewer
NEIGHBOURS = 2  # a suspect sample is judged by up to this many samples on each side ...
NEIGHBOUR_CADENCES = 2.0  # ... within this many of its cadences (no further than a gap starts) ...
CORROBORATING = 2  # ... and stands when at least this many of them deviate with it


@dataclass(frozen=True)
class GridConfig:
    default_area: str = DEFAULT_AREA
    node_areas: Mapping[str, str] = field(default_factory=dict)  # grid_node_id -> area name
    states: StateConfig = field(default_factory=StateConfig)
    voltage: VoltageConfig = field(default_factory=VoltageConfig)
    risk: RiskConfig = field(default_factory=RiskConfig)
    window: str = "1h"

    def area_of(self, node: str) -> SynchronousArea:
        return area(self.node_areas.get(node, self.default_area))


@dataclass(frozen=True)
class Analysis:
    samples: pd.DataFrame  # stability.SAMPLE_COLUMNS
    figures: pd.DataFrame  # stability.FIGURE_COLUMNS + risk.RISK_COLUMNS, per node and window
    events: pd.DataFrame  # states.EVENT_COLUMNS
    ends: pd.DataFrame  # END_COLUMNS: each node's state at its last sample

    def nodes_open_at_end(self) -> list[str]:
        """Nodes whose last sample is in alert or emergency."""
        return sorted(self.ends.loc[self.ends["state"] != "normal", "grid_node_id"])

    def replaced(self, other: Analysis, nodes: list[str]) -> Analysis:
        """This analysis with the nodes `nodes` taken from `other` (an analysis of more of their data)."""
        return Analysis(
            with_nodes_of(self.samples, other.samples, nodes),
            with_nodes_of(self.figures, other.figures, nodes),
            with_nodes_of(self.events, other.events, nodes),
            with_nodes_of(self.ends, other.ends, nodes),
        )


def joined(frames: Iterable[pd.DataFrame], empty: pd.DataFrame) -> pd.DataFrame:
    """The non-empty `frames` one after another, or `empty` (pandas warns on, and takes dtypes from,
    empty frames in a concat)."""
    parts = [f for f in frames if len(f)]
    return pd.concat(parts, ignore_index=True) if parts else empty


def with_nodes_of(mine: pd.DataFrame, theirs: pd.DataFrame, nodes: Iterable[str]) -> pd.DataFrame:
    """`mine` with the rows of the grid nodes `nodes` taken from `theirs`."""
    return joined((mine[~mine["grid_node_id"].isin(list(nodes))], theirs), mine.iloc[0:0])


def excluded(
    deviation: Floats, suspect: npt.NDArray[np.bool_], line: Timeline, zone: SynchronousArea
) -> npt.NDArray[np.bool_]:
    """Per sample of one node: it awaits review (`suspect`) and fewer than `CORROBORATING` of its
    neighbours (the `NEIGHBOURS` samples each side within `NEIGHBOUR_CADENCES` of its cadence, flagged
    or not) deviate in its direction by more than the area's alert deviation. The frequency is one
    signal over the synchronous area and moves in seconds to minutes, so a real excursion beyond the
    statutory band is flanked by samples well off nominal on its side, while a sensor fault (alone or
    two in a row) is flanked by ordinary samples or ones off the other way."""
    out = np.zeros(line.size, dtype=bool)
    at = np.flatnonzero(suspect)
    if at.size == 0:
        return out
    reach = NEIGHBOUR_CADENCES * line.cadence_s[at]  # NaN for a lone sample: no neighbours
    agreeing = np.zeros(at.size, dtype=np.int64)
    for offset in (*range(-NEIGHBOURS, 0), *range(1, NEIGHBOURS + 1)):
        other = np.clip(at + offset, 0, line.size - 1)
        near = (other == at + offset) & (np.abs(line.seconds[other] - line.seconds[at]) <= reach)
        along = np.sign(deviation[other]) == np.sign(deviation[at])
        agreeing += near & along & (np.abs(deviation[other]) > zone.alert_deviation_hz)
    out[at] = agreeing < CORROBORATING
    return out


def _node(
    node: str, raw: pd.DataFrame, config: GridConfig
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, object]]:
    """One node's samples (SAMPLE_COLUMNS), events and end (END_COLUMNS) from its raw samples (sorted)."""
    zone = config.area_of(node)
    suspect = raw[SUSPECT].to_numpy(dtype=bool)
    if suspect.any():
        deviations = raw["frequency_hz"].to_numpy(dtype=np.float64) - zone.nominal_hz
        dropped = excluded(deviations, suspect, timeline(pd.DatetimeIndex(raw["measured_at"])), zone)
    else:
        dropped = suspect
    left_out, frame = raw[dropped], raw[~dropped]
    times = pd.DatetimeIndex(frame["measured_at"])
    line = timeline(times)
    frequency = frame["frequency_hz"].to_numpy(dtype=np.float64)
    deviation = frequency - zone.nominal_hz
    states = evaluate(deviation, line, zone, config.states)
    rates, window_s = rocof(frequency, line)
    gap_after = np.zeros(line.size, dtype=bool)
    gap_after[:-1] = line.segment[1:] != line.segment[:-1]
    samples = pd.DataFrame(
        {
            "grid_node_id": node,
            "measured_at": times,
            "area": zone.name,
            "standard_range_hz": zone.standard_range_hz,
            "deviation_hz": deviation,
            "excluded": False,
            "duration_s": line.duration_s,
            "gap_after": gap_after,  # a gap follows: the state does not carry to the next sample
            "steady_hz": states.steady_hz,
            "state": states.state,
            "rocof_hz_s": rates,
            "rocof_window_s": window_s,
            "voltage_v": frame["voltage_v"].to_numpy(dtype=np.float64),
            "load_mw": frame["load_mw"].to_numpy(dtype=np.float64),
            "capacity_mw": frame["capacity_mw"].to_numpy(dtype=np.float64),
        }
    )
    found = events(node, times, deviation, line, states, zone)
    end: dict[str, object] = {
        "grid_node_id": node,
        "last_sample_at": raw["measured_at"].iloc[-1],  # read, whether it counts or not
        "state": STATES[int(states.state[-1])] if line.size else STATES[NORMAL],
        "steady_hz": float(states.steady_hz[-1]) if line.size else np.nan,
    }
    if left_out.empty:
        return samples, found, end
    # In no time, state or frequency figure: counted, with their voltage and load.
    faults = pd.DataFrame(
        {
            "grid_node_id": node,
            "measured_at": pd.DatetimeIndex(left_out["measured_at"]),
            "area": zone.name,
            "standard_range_hz": zone.standard_range_hz,
            "deviation_hz": np.nan,
            "excluded": True,
            "duration_s": 0.0,
            "gap_after": False,
            "steady_hz": np.nan,
            "state": np.int8(NORMAL),
            "rocof_hz_s": np.nan,
            "rocof_window_s": np.nan,
            "voltage_v": left_out["voltage_v"].to_numpy(dtype=np.float64),
            "load_mw": left_out["load_mw"].to_numpy(dtype=np.float64),
            "capacity_mw": left_out["capacity_mw"].to_numpy(dtype=np.float64),
        }
    )
    merged = joined((samples, faults), samples).sort_values("measured_at", kind="stable", ignore_index=True)
    return merged, found, end


def analyse(raw: pd.DataFrame, config: GridConfig) -> Analysis:
    """Analyse raw samples (INPUT_COLUMNS, and optionally SUSPECT; voltage, load and capacity may be
    null)."""
    raw = raw.assign(
        **{SUSPECT: raw[SUSPECT].eq(True) if SUSPECT in raw else False},
        measured_at=pd.to_datetime(raw["measured_at"], utc=True),
        **{c: pd.to_numeric(raw[c], errors="coerce").astype("float64") for c in INPUT_COLUMNS[2:]},
    ).sort_values(["grid_node_id", "measured_at"])
    per_sample, per_event, per_end = [], [], []
    for node, frame in raw.groupby("grid_node_id", sort=True):
        samples, found, end = _node(str(node), frame, config)
        per_sample.append(samples)
        per_end.append(end)
        if len(found):
            per_event.append(found)
    samples = pd.concat(per_sample, ignore_index=True) if per_sample else pd.DataFrame(columns=SAMPLE_COLUMNS)
    figures = window_figures(samples, config.voltage, config.window)
    areas = {name: area(name) for name in figures["area"].unique()}
    figures = pd.concat([figures, risk(figures, areas, config.risk)], axis=1) if len(figures) else figures
    if figures.empty:
        figures = pd.DataFrame(columns=FIGURE_COLUMNS + RISK_COLUMNS)
    found_events = (
        pd.concat(per_event, ignore_index=True) if per_event else pd.DataFrame(columns=EVENT_COLUMNS)
    )
    ends = pd.DataFrame(per_end, columns=END_COLUMNS)
    return Analysis(samples, figures, found_events, ends)
