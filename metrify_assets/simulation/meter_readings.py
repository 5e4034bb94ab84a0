"""Smart-meter interval readings: clean load profiles, injected faults, and contract v1 messages.

Values are generated as (meter x interval) arrays; only building the JSON messages loops in Python.
`register_kwh` is the import register at the end of the interval: it grows by each interval's
import energy (export intervals leave it unchanged), so the interval sum matches the register delta.
Faults touch the interval channel only, never the register, as with real head-end data errors.

A meter's readings and faults at an interval depend only on the seed, the meter (its registry row and
number) and the interval, not on how many meters a run has or which days it covers: every draw comes
from a stream of its own per block of BLOCK meters (registry.py) and, per interval, per local day.
Simulating a day again, with more meters or a longer period, sends the same values for it. The
register is the one exception: it counts from a value of the meter's at the run's first interval, so
a run that starts on another day sends other register values (the same increments).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import numpy.typing as npt
import pandas as pd

from metrify_assets.contracts import METER_READINGS, iso_with_offset
from metrify_assets.simulation import load_profiles
from metrify_assets.simulation.config import METER_FAULTS, SimulationConfig
from metrify_assets.simulation.faults import (
    NO_FAULT,
    Label,
    Record,
    choose_faults,
    label,
    malform,
    record_stream,
)
from metrify_assets.simulation.registry import BLOCK, grid_node_ids, per_meter_blocks
from metrify_assets.simulation.shifts import apply_shifts
from metrify_assets.simulation.timegrid import TimeGrid, daily_ou, day_spans, day_stream, per_day

SOURCE = METER_READINGS.source
BATCH_SOURCE = "headend-profile"  # value of the `source` field for meters sent as daily batches
STREAM_SOURCE = "ami-interval"  # ... and for meters sent one reading per message
NOISE_SIGMA = {"residential": 0.18, "commercial": 0.08, "industrial": 0.05}
POWER_FACTOR = {"residential": 0.97, "commercial": 0.93, "industrial": 0.9}
MIN_ZERO_RUN, MAX_ZERO_RUN = 8, 16
# Tags of the streams next to a key: the draws of each kind come from streams of their own.
CONSTANTS, NOISE, GRID_NODES, CLOUD, FAULTS, DELIVERY = range(6)

Array = npt.NDArray[np.float64]
_QUARTER_HOURS = np.arange(0.0, 24.0, 0.25)
# The load shapes' highest value (every segment, weekdays and weekends): the voltage sags 2 V at it.
PEAK_SHAPE = max(
    float(shape(_QUARTER_HOURS, np.full(96, weekend)).max())
    for shape in load_profiles.SEGMENT_SHAPES.values()
    for weekend in (False, True)
)
# Each segment's mean relative load over a week: at a meter's scale, its typical interval energy.
MEAN_SHAPE = {
    name: (5 * float(shape(_QUARTER_HOURS, np.full(96, False)).mean())
           + 2 * float(shape(_QUARTER_HOURS, np.full(96, True)).mean())) / 7
    for name, shape in load_profiles.SEGMENT_SHAPES.items()
}  # fmt: skip


@dataclass(frozen=True)
class MeterArrays:
    """Clean readings, shape (meters, intervals)."""

    energy: Array  # kWh, negative where export
    export: npt.NDArray[np.bool_]
    register: Array
    voltage: Array
    power_factor: Array
    typical: Array  # per meter: its mean interval consumption (its scale, its segment), the base for spikes


def _per_interval(
    key: int, tag: int, n: int, grid: TimeGrid, draw: Callable[[np.random.Generator, int], Array]
) -> Array:
    """`draw(stream, steps)`: (BLOCK, k, steps) values for a block of meters on a local day of `steps`
    intervals, drawn whole from a stream of the key, the tag, the block and the day; returned as one
    (n, k, intervals) array for the grid's days."""
    return per_day(
        grid,
        lambda day, steps: per_meter_blocks(
            n, lambda block: draw(np.random.default_rng([key, tag, block, day.toordinal()]), steps)
        ),
    )


def clean_readings(
    config: SimulationConfig, meters: pd.DataFrame, grid: TimeGrid, rng: np.random.Generator
) -> MeterArrays:
    """Readings without faults. `rng` gives the key of the draws: per-meter constants per block of
    meters, interval noise per block and local day, each grid node's voltage offset, the cloud per day."""
    key = int(rng.integers(2**63))
    n, steps = len(meters), len(grid)
    segment = meters["segment"].to_numpy(dtype=object)
    shape = np.empty((n, steps))
    sigma = np.empty(n)
    base_scale = np.empty(n)
    pf_base = np.empty(n)
    mean_shape = np.empty(n)
    for name, profile in load_profiles.SEGMENT_SHAPES.items():
        mask = segment == name
        shape[mask] = profile(grid.hour, grid.weekend)
        sigma[mask] = NOISE_SIGMA[name]
        base_scale[mask] = load_profiles.SEGMENT_SCALE_KWH[name]
        pf_base[mask] = POWER_FACTOR[name]
        mean_shape[mask] = MEAN_SHAPE[name]

    def constants(block: int) -> Array:
        r = np.random.default_rng([key, CONSTANTS, block])
        return np.column_stack(
            [
                r.lognormal(0.0, 0.35, size=BLOCK),  # scale
                r.random(BLOCK) < config.solar_share,  # rooftop solar (residential meters only)
                r.uniform(0.3, 0.9, size=BLOCK),  # its peak
                r.uniform(1_000, 30_000, size=BLOCK),  # register at the first interval (at a home's size)
                r.normal(0.0, 1.5, size=BLOCK),  # the meter's own voltage offset
                r.normal(0.0, 0.01, size=BLOCK),  # and power-factor offset
            ]
        )

    scale_factor, solar, solar_peak, initial, volt_offset, pf_offset = per_meter_blocks(n, constants).T
    scale = base_scale * scale_factor
    noise, volt_noise, pf_noise = _per_interval(
        key, NOISE, n, grid, lambda r, k: r.standard_normal((BLOCK, 3, k))
    ).transpose(1, 0, 2)
    consumption = shape * scale[:, None] * np.exp(noise * sigma[:, None] - sigma[:, None] ** 2 / 2)

    peak = solar_peak * ((segment == "residential") & (solar > 0))
    cloud_ou = daily_ou(
        lambda day: day_stream(key, CLOUD, day),
        grid,
        config.interval_minutes,
        1,
        0.25,
        8.0 * 15 / config.interval_minutes,
    )[0]
    cloud = np.clip(0.6 + cloud_ou, 0.1, 1.0)
    net = np.round(consumption - peak[:, None] * load_profiles.solar(grid.hour) * cloud, 4) + 0.0
    export = net < 0

    size = np.sqrt(scale / load_profiles.SEGMENT_SCALE_KWH["residential"])
    register = np.round((initial * size)[:, None] + np.cumsum(np.maximum(net, 0.0), axis=1), 4)

    nodes = pd.Index(grid_node_ids(config.grid_nodes))
    node_index = nodes.get_indexer(pd.Index(meters["grid_node_id"]))
    if (node_index < 0).any():
        raise ValueError(f"meters on grid nodes outside the network's {len(nodes)}: {config.grid_nodes=}")
    node_offset = np.random.default_rng([key, GRID_NODES]).normal(4.0, 2.0, size=len(nodes))[node_index]
    voltage = (
        230.0 + node_offset[:, None] + volt_offset[:, None] - 2.0 * shape / PEAK_SHAPE + 0.8 * volt_noise
    )
    power_factor: Array = pf_base[:, None] + pf_offset[:, None] + 0.005 * pf_noise
    return MeterArrays(
        energy=net,
        export=export,
        register=register,
        voltage=np.round(np.clip(voltage, 216.0, 250.0), 1),
        power_factor=np.round(np.minimum(power_factor, 1.0), 3).astype(np.float64),
        typical=scale * mean_shape,
    )


@dataclass(frozen=True)
class Fault:
    """A fault placed at a (meter, interval), with two uniform draws of its own for its details."""

    kind: str
    u: float
    v: float


def _place_faults(config: SimulationConfig, key: int, n: int, grid: TimeGrid) -> dict[tuple[int, int], Fault]:
    """A fault per faulty (meter, interval), drawn per block of meters and local day. A zero run owns
    its whole span, so no other fault lands inside it; it ends on its own day (a run that would not
    fit before the day's end is dropped), so the placement of a day depends on that day's draws only."""
    if config.fault_rate <= 0:
        return {}

    def draw(r: np.random.Generator, k: int) -> Array:
        kinds = choose_faults(r, (BLOCK, k), config.fault_rate, METER_FAULTS)
        return np.stack([kinds.astype(np.float64), *r.random((2, BLOCK, k))], axis=1)

    kinds, first, second = _per_interval(key, FAULTS, n, grid, draw).transpose(1, 0, 2)
    day_end = np.empty(len(grid), dtype=np.int64)
    for _, begin, end in day_spans(grid):
        day_end[begin:end] = end
    faults: dict[tuple[int, int], Fault] = {}
    blocked = np.zeros(n, dtype=np.int64)
    for m, t in np.argwhere(kinds != NO_FAULT).tolist():
        if t < blocked[m]:
            continue
        fault = Fault(METER_FAULTS[int(kinds[m, t])], float(first[m, t]), float(second[m, t]))
        if fault.kind == "zero_run":
            end = t + zero_run_length(fault)
            if end > day_end[t]:
                continue
            blocked[m] = end
        faults[(m, t)] = fault
    return faults


def zero_run_length(fault: Fault) -> int:
    return MIN_ZERO_RUN + int(fault.u * (MAX_ZERO_RUN - MIN_ZERO_RUN + 1))


def _record(
    meter_id: str,
    start: str,
    interval: int,
    energy: float,
    export: bool,
    register: float,
    voltage: float,
    power_factor: float,
    source: str,
) -> Record:
    record: Record = {
        "meter_id": meter_id,
        "reading_start": start,
        "interval_minutes": interval,
        "energy_kwh": energy,
    }
    if export:
        record["direction"] = "export"
    record.update(
        register_kwh=register, voltage_v=voltage, power_factor=power_factor, status_flags=[], source=source
    )
    return record


def meter_messages(
    config: SimulationConfig, meters: pd.DataFrame, grid: TimeGrid, rng: np.random.Generator
) -> tuple[dict[date, list[str]], list[Label]]:
    """Messages per local day (daily batches first, then single readings in time order, then
    re-sent duplicates, as they would arrive) and the labels of every injected fault. `rng` gives
    two keys: the clean readings' (`clean_readings`), then the faults' and the deliveries'."""
    arrays, shift_labels = apply_shifts(config, meters, grid, clean_readings(config, meters, grid, rng))
    stream = int(rng.integers(2**63))
    n, steps = len(meters), len(grid)
    batched = per_meter_blocks(
        n, lambda block: np.random.default_rng([stream, DELIVERY, block]).random(BLOCK) < config.batch_share
    ).tolist()
    faults = _place_faults(config, stream, n, grid)

    energy, export, voltage = arrays.energy.copy(), arrays.export.copy(), arrays.voltage.copy()
    starts: dict[tuple[int, int], str] = {}
    labels: list[Label] = list(shift_labels)
    ids = meters["meter_id"].tolist()
    for (m, t), placed in faults.items():
        kind = placed.kind
        key_of = {"meter_id": ids[m], "reading_start": grid.iso[t]}
        if kind == "spike":
            factor = 10.0 + 40.0 * placed.u
            energy[m, t] = round(max(abs(energy[m, t]), arrays.typical[m]) * factor, 4)
            export[m, t] = False
            labels.append(label(kind, SOURCE, key_of, original_kwh=arrays.energy[m, t], factor=factor))
        elif kind == "negative_energy":
            energy[m, t] = -round(max(abs(energy[m, t]), 0.01), 4)
            export[m, t] = False
            labels.append(label(kind, SOURCE, key_of, original_kwh=arrays.energy[m, t]))
        elif kind == "zero_run":
            length = zero_run_length(placed)
            energy[m, t : t + length] = 0.0
            export[m, t : t + length] = False
            labels.append(label(kind, SOURCE, key_of, intervals=length, last=grid.iso[t + length - 1]))
        elif kind == "voltage_out_of_range":
            low, high = (170.0, 195.0) if placed.u < 0.5 else (265.0, 280.0)
            voltage[m, t] = round(low + (high - low) * placed.v, 1)
            labels.append(label(kind, SOURCE, key_of, voltage_v=voltage[m, t]))
        elif kind == "clock_shift":
            minutes = 1 + int(placed.v * max(1, config.interval_minutes - 1))
            shift = (-1 if placed.u < 0.5 else 1) * minutes
            shifted = pd.DatetimeIndex([grid.utc[t] + timedelta(minutes=shift)]).tz_convert(config.timezone)
            starts[(m, t)] = iso_with_offset(shifted)[0]
            labels.append(
                label(
                    kind,
                    SOURCE,
                    {**key_of, "reading_start": starts[(m, t)]},
                    expected_reading_start=grid.iso[t],
                    shift_minutes=shift,
                )
            )
        elif kind == "missing_interval":
            labels.append(label(kind, SOURCE, key_of))

    batches: dict[tuple[int, date], list[Record]] = defaultdict(list)
    singles: dict[date, list[str]] = defaultdict(list)
    resent: dict[date, list[str]] = defaultdict(list)
    e_l: list[list[float]] = energy.tolist()
    x_l: list[list[bool]] = export.tolist()
    r_l: list[list[float]] = arrays.register.tolist()
    v_l: list[list[float]] = voltage.tolist()
    p_l: list[list[float]] = arrays.power_factor.tolist()
    for t in range(steps):
        day = grid.day[t]
        for m in range(n):
            found = faults.get((m, t))
            fault = found.kind if found is not None else None
            if fault == "missing_interval":
                continue
            record = _record(
                ids[m],
                starts.get((m, t), grid.iso[t]),
                config.interval_minutes,
                e_l[m][t],
                x_l[m][t],
                r_l[m][t],
                v_l[m][t],
                p_l[m][t],
                BATCH_SOURCE if batched[m] else STREAM_SOURCE,
            )
            if fault == "malformed":
                payload, variant = malform(SOURCE, record, record_stream(stream, m, grid.utc[t]))
                singles[day].append(payload)
                labels.append(
                    label(
                        fault,
                        SOURCE,
                        {"meter_id": ids[m], "reading_start": grid.iso[t]},
                        payload,
                        variant=variant,
                    )
                )
                continue
            if batched[m]:
                batches[(m, day)].append(record)
            else:
                singles[day].append(json.dumps(record))
            key = {"meter_id": ids[m], "reading_start": record["reading_start"]}
            if fault == "duplicate_exact":
                resent[day].append(json.dumps(record))
                labels.append(label(fault, SOURCE, key))
            elif found is not None and fault == "duplicate_conflict":
                nudge = -0.01 if x_l[m][t] else 0.01  # keeps the sign, so only the value conflicts
                conflicting = round(e_l[m][t] * (1.2 + 0.8 * found.u) + nudge, 4)
                resent[day].append(json.dumps({**record, "energy_kwh": conflicting}))
                labels.append(label(fault, SOURCE, key, energy_kwh=[e_l[m][t], conflicting]))

    messages: dict[date, list[str]] = {}
    for day in sorted(set(grid.day)):
        profile = [json.dumps({"records": batches[(m, day)]}) for m in range(n) if batches.get((m, day))]
        messages[day] = profile + singles[day] + resent[day]
    return messages, labels
