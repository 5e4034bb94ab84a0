"""Grid-node telemetry: system frequency, node voltage and load, one record per node per step.

Frequency is one synchronous-area signal, 50 Hz plus an Ornstein-Uhlenbeck deviation with a std of
19 mHz and a correlation time of a few minutes (as in the real Paris 2014 sample), plus a little
measurement noise per node. Nodes are LV monitoring points (230 V nominal) with a daily load shape.
`frequency_events` sustained deviations, sized to the simulated network's synchronous area
(`event_shape`: in Great Britain 375 mHz low for 13 minutes, beyond half of its 500 mHz maximum
steady-state deviation for longer than its 10-minute alert trigger; in Continental Europe 150 mHz for
8 minutes), put every node in ENTSO-E's alert state once, so the grid states, events and alerts have
something real to show.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import date

import numpy as np

from metrify_assets.contracts import GRID_STATUS
from metrify_assets.grid.areas import SynchronousArea, area
from metrify_assets.simulation import load_profiles
from metrify_assets.simulation.config import FREQUENCY_EVENT, GRID_FAULTS, SimulationConfig
from metrify_assets.simulation.faults import (
    NO_FAULT,
    Label,
    Record,
    faults_per_day,
    label,
    malform,
    record_stream,
)
from metrify_assets.simulation.registry import grid_node_ids
from metrify_assets.simulation.timegrid import TimeGrid, daily_ou, day_stream, per_day

SOURCE = GRID_STATUS.source
# Tags of the grid's streams next to its key.
SYSTEM, NOISE, NODES, WANDER, VOLTAGE, FAULTS = range(6)
NOMINAL_HZ = 50.0
FREQ_STD_HZ = 0.019
FREQ_CORRELATION_S = 180.0
# The network load shape's highest value: a node's utilisation is 60 % of its capacity at it.
NETWORK_PEAK = max(
    float(load_profiles.network(np.arange(0.0, 24.0, 0.25), np.full(96, we)).max()) for we in (False, True)
)


def event_shape(synchronous: SynchronousArea) -> tuple[float, int]:
    """A frequency event's deviation (Hz) and minutes: 1.5 times the area's alert deviation (half its
    maximum steady-state deviation, so below an emergency), low, for 3 minutes past its alert trigger
    time: an alert of every node, whatever the area."""
    return -1.5 * synchronous.alert_deviation_hz, int(synchronous.alert_trigger_s // 60) + 3


def frequency_events(config: SimulationConfig, grid: TimeGrid, system: np.ndarray) -> list[int]:
    """Overwrite the system deviation with `config.frequency_events` sustained drops (in place) and
    return their first steps: afternoons of the last days, from a stream of their own so the rest of
    the simulation is the same with or without them. A clean run (`fault_rate` 0) has none."""
    rng = np.random.default_rng([config.seed, 0xF4E9])
    deviation_hz, minutes = event_shape(area(config.grid_area))
    length = max(1, -(-minutes // config.grid_interval_minutes))
    day_steps = len(grid) // config.days
    starts = []
    for i in range(min(config.frequency_events if config.fault_rate > 0 else 0, config.days)):
        day = config.days - 1 - i
        start = day * day_steps + int(rng.uniform(0.55, 0.7) * day_steps)
        if start + length > len(grid):
            continue
        system[start : start + length] = deviation_hz + rng.normal(0.0, 0.005, size=length)
        starts.append(start)
    return starts


def grid_messages(
    config: SimulationConfig, grid: TimeGrid, rng: np.random.Generator
) -> tuple[dict[date, list[str]], list[Label]]:
    """Messages per local day, one record each, and the labels of injected faults."""
    nodes = grid_node_ids(config.grid_nodes)
    n, steps = len(nodes), len(grid)
    key = int(rng.integers(2**63))

    def ou(tag: int, series: int, std: float, correlation_s: float) -> np.ndarray:
        return daily_ou(
            lambda day: day_stream(key, tag, day),
            grid,
            config.grid_interval_minutes,
            series,
            std,
            correlation_s / step_s,
        )

    step_s = config.grid_interval_minutes * 60.0
    system = ou(SYSTEM, 1, FREQ_STD_HZ, FREQ_CORRELATION_S)[0]
    events = frequency_events(config, grid, system)
    measured = per_day(grid, lambda day, k: day_stream(key, NOISE, day).normal(size=(n, k)))
    frequency = NOMINAL_HZ + system[None, :] + 0.002 * measured

    per_node = np.random.default_rng([key, NODES])
    capacity = np.round(per_node.uniform(20.0, 80.0, size=n), 1)
    offset = per_node.normal(4.0, 2.0, size=n)
    utilisation = 0.25 + 0.35 * load_profiles.network(grid.hour, grid.weekend) / NETWORK_PEAK
    wander = ou(WANDER, n, 0.03, 3600.0)
    load = capacity[:, None] * np.clip(utilisation[None, :] + wander, 0.05, 0.98)
    voltage = 230.0 + offset[:, None] - 3.0 * (load / capacity[:, None] - 0.4) + ou(VOLTAGE, n, 1.0, 1800.0)

    kinds, excursions = faults_per_day(grid, key, FAULTS, n, config.fault_rate, GRID_FAULTS)
    deviation_hz, minutes = event_shape(area(config.grid_area))
    labels: list[Label] = [
        label(FREQUENCY_EVENT, SOURCE, {"grid_node_id": node, "measured_at": grid.iso[start]},
              deviation_hz=deviation_hz, minutes=minutes)
        for start in events for node in nodes
    ]  # fmt: skip
    messages: dict[date, list[str]] = defaultdict(list)
    f_l = np.round(frequency, 4).tolist()
    v_l, l_l = np.round(voltage, 2).tolist(), np.round(load, 3).tolist()
    cap_l = capacity.tolist()
    for t in range(steps):
        for m in range(n):
            record: Record = {
                "grid_node_id": nodes[m],
                "measured_at": grid.iso[t],
                "frequency_hz": f_l[m][t],
                "voltage_v": v_l[m][t],
                "load_mw": l_l[m][t],
                "capacity_mw": cap_l[m],
            }
            kind = GRID_FAULTS[int(kinds[m, t])] if kinds[m, t] != NO_FAULT else None
            record_key = {"grid_node_id": nodes[m], "measured_at": grid.iso[t]}
            if kind == "frequency_out_of_range":
                u = excursions[m, t]  # 0..1: 0.55-0.9 Hz, below 50 Hz for u < 0.5
                excursion = (0.55 + 0.35 * abs(2 * u - 1)) * (1 if u >= 0.5 else -1)
                record["frequency_hz"] = round(NOMINAL_HZ + excursion, 4)
                labels.append(label(kind, SOURCE, record_key, frequency_hz=record["frequency_hz"]))
            if kind == "malformed":
                payload, variant = malform(SOURCE, record, record_stream(key, m, grid.utc[t]))
                messages[grid.day[t]].append(payload)
                labels.append(label(kind, SOURCE, record_key, payload, variant=variant))
            else:
                messages[grid.day[t]].append(json.dumps(record))
    return dict(messages), labels
