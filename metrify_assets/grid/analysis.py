"""Raw grid samples -> per-sample states, stability figures and risk per node and hour, and events.

Pure: `store.py` reads the samples and writes what this returns. Each node gets the parameters of
its synchronous area (`GridConfig.area_of`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from metrify_assets.grid.areas import DEFAULT_AREA, SynchronousArea, area
from metrify_assets.grid.risk import RISK_COLUMNS, RiskConfig, risk
from metrify_assets.grid.stability import FIGURE_COLUMNS, SAMPLE_COLUMNS, VoltageConfig, rocof, window_figures
from metrify_assets.grid.states import EVENT_COLUMNS, STATES, StateConfig, evaluate, events
from metrify_assets.grid.timeline import timeline

INPUT_COLUMNS = ["grid_node_id", "measured_at", "frequency_hz", "voltage_v", "load_mw", "capacity_mw"]
END_COLUMNS = ["grid_node_id", "last_sample_at", "state", "steady_hz"]


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


def _node(node: str, frame: pd.DataFrame, config: GridConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    zone = config.area_of(node)
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
    return samples, events(node, times, deviation, line, states, zone)


def analyse(raw: pd.DataFrame, config: GridConfig) -> Analysis:
    """Analyse raw samples (INPUT_COLUMNS; voltage, load and capacity may be null)."""
    raw = raw.assign(
        measured_at=pd.to_datetime(raw["measured_at"], utc=True),
        **{c: pd.to_numeric(raw[c], errors="coerce").astype("float64") for c in INPUT_COLUMNS[2:]},
    ).sort_values(["grid_node_id", "measured_at"])
    per_sample, per_event = [], []
    for node, frame in raw.groupby("grid_node_id", sort=True):
        samples, found = _node(str(node), frame, config)
        per_sample.append(samples)
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
    last = samples.groupby("grid_node_id", sort=True).tail(1)
    ends = pd.DataFrame(
        {
            "grid_node_id": last["grid_node_id"].to_numpy(),
            "last_sample_at": list(last["measured_at"]),
            "state": [STATES[int(s)] for s in last["state"]],
            "steady_hz": last["steady_hz"].to_numpy(),
        },
        columns=END_COLUMNS,
    )
    return Analysis(samples, figures, found_events, ends)
