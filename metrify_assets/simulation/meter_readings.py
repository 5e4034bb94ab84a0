"""Smart-meter interval readings: clean load profiles, injected faults, and contract v1 messages.

Values are generated as (meter x interval) arrays; only building the JSON messages loops in Python.
`register_kwh` is the import register at the end of the interval: it grows by each interval's
import energy (export intervals leave it unchanged), so the interval sum matches the register delta.
Faults touch the interval channel only, never the register, as with real head-end data errors.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import numpy.typing as npt
import pandas as pd

from metrify_assets.contracts import METER_READINGS, iso_with_offset
from metrify_assets.simulation import load_profiles
from metrify_assets.simulation.config import METER_FAULTS, SimulationConfig
from metrify_assets.simulation.faults import NO_FAULT, Label, Record, choose_faults, label, malform
from metrify_assets.simulation.shifts import apply_shifts
from metrify_assets.simulation.timegrid import TimeGrid, ou_process

SOURCE = METER_READINGS.source
BATCH_SOURCE = "headend-profile"  # value of the `source` field for meters sent as daily batches
STREAM_SOURCE = "ami-interval"  # ... and for meters sent one reading per message
NOISE_SIGMA = {"residential": 0.18, "commercial": 0.08, "industrial": 0.05}
POWER_FACTOR = {"residential": 0.97, "commercial": 0.93, "industrial": 0.9}
MIN_ZERO_RUN, MAX_ZERO_RUN = 8, 16

Array = npt.NDArray[np.float64]


@dataclass(frozen=True)
class MeterArrays:
    """Clean readings, shape (meters, intervals)."""

    energy: Array  # kWh, negative where export
    export: npt.NDArray[np.bool_]
    register: Array
    voltage: Array
    power_factor: Array
    typical: Array  # per meter: mean absolute interval energy, the base for spikes


def clean_readings(
    config: SimulationConfig, meters: pd.DataFrame, grid: TimeGrid, rng: np.random.Generator
) -> MeterArrays:
    n, steps = len(meters), len(grid)
    segment = meters["segment"].to_numpy(dtype=object)
    shape = np.empty((n, steps))
    sigma = np.empty(n)
    base_scale = np.empty(n)
    pf_base = np.empty(n)
    for name, profile in load_profiles.SEGMENT_SHAPES.items():
        mask = segment == name
        shape[mask] = profile(grid.hour, grid.weekend)
        sigma[mask] = NOISE_SIGMA[name]
        base_scale[mask] = load_profiles.SEGMENT_SCALE_KWH[name]
        pf_base[mask] = POWER_FACTOR[name]
    scale = base_scale * rng.lognormal(0.0, 0.35, size=n)
    noise = np.exp(rng.standard_normal((n, steps)) * sigma[:, None] - sigma[:, None] ** 2 / 2)
    consumption = shape * scale[:, None] * noise

    has_solar = (segment == "residential") & (rng.random(n) < config.solar_share)
    peak = rng.uniform(0.3, 0.9, size=n) * has_solar
    cloud = np.clip(0.6 + ou_process(rng, steps, 1, 0.25, 8.0)[0], 0.1, 1.0)
    net = np.round(consumption - peak[:, None] * load_profiles.solar(grid.hour) * cloud, 4) + 0.0
    export = net < 0

    size = np.sqrt(scale / load_profiles.SEGMENT_SCALE_KWH["residential"])
    initial = rng.uniform(1_000, 30_000, size=n) * size
    register = np.round(initial[:, None] + np.cumsum(np.maximum(net, 0.0), axis=1), 4)

    node_codes, node_index = np.unique(meters["grid_node_id"].to_numpy(dtype=str), return_inverse=True)
    node_offset = rng.normal(4.0, 2.0, size=len(node_codes))[node_index]
    voltage = (
        230.0
        + node_offset[:, None]
        + rng.normal(0.0, 1.5, size=n)[:, None]
        - 2.0 * shape / shape.max()
        + rng.normal(0.0, 0.8, size=(n, steps))
    )
    power_factor: Array = (
        pf_base[:, None] + rng.normal(0.0, 0.01, size=n)[:, None] + rng.normal(0.0, 0.005, size=(n, steps))
    )
    return MeterArrays(
        energy=net,
        export=export,
        register=register,
        voltage=np.round(np.clip(voltage, 216.0, 250.0), 1),
        power_factor=np.round(np.minimum(power_factor, 1.0), 3).astype(np.float64),
        typical=np.abs(net).mean(axis=1),
    )


def _place_faults(
    config: SimulationConfig, shape: tuple[int, int], rng: np.random.Generator
) -> tuple[dict[tuple[int, int], str], dict[tuple[int, int], int]]:
    """Fault kind per (meter, interval), and zero-run lengths. A zero run owns its whole span, so
    no other fault lands inside it; runs that would not fit before the end are dropped."""
    kinds = choose_faults(rng, shape, config.fault_rate, METER_FAULTS)
    faults: dict[tuple[int, int], str] = {}
    zero_runs: dict[tuple[int, int], int] = {}
    blocked = np.zeros(shape[0], dtype=np.int64)
    for m, t in np.argwhere(kinds != NO_FAULT).tolist():
        if t < blocked[m]:
            continue
        kind = METER_FAULTS[int(kinds[m, t])]
        if kind == "zero_run":
            length = int(rng.integers(MIN_ZERO_RUN, MAX_ZERO_RUN + 1))
            if t + length > shape[1]:
                continue
            zero_runs[(m, t)] = length
            blocked[m] = t + length
        faults[(m, t)] = kind
    return faults, zero_runs


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
    re-sent duplicates, as they would arrive) and the labels of every injected fault."""
    arrays, shift_labels = apply_shifts(config, meters, grid, clean_readings(config, meters, grid, rng))
    n, steps = len(meters), len(grid)
    batched = [bool(u < config.batch_share) for u in rng.random(n)]
    faults, zero_runs = _place_faults(config, (n, steps), rng)

    energy, export, voltage = arrays.energy.copy(), arrays.export.copy(), arrays.voltage.copy()
    starts: dict[tuple[int, int], str] = {}
    labels: list[Label] = list(shift_labels)
    ids = meters["meter_id"].tolist()
    for (m, t), kind in faults.items():
        key = {"meter_id": ids[m], "reading_start": grid.iso[t]}
        if kind == "spike":
            factor = float(rng.uniform(10.0, 50.0))
            energy[m, t] = round(max(abs(energy[m, t]), arrays.typical[m]) * factor, 4)
            export[m, t] = False
            labels.append(label(kind, SOURCE, key, original_kwh=arrays.energy[m, t], factor=factor))
        elif kind == "negative_energy":
            energy[m, t] = -round(max(abs(energy[m, t]), 0.01), 4)
            export[m, t] = False
            labels.append(label(kind, SOURCE, key, original_kwh=arrays.energy[m, t]))
        elif kind == "zero_run":
            length = zero_runs[(m, t)]
            energy[m, t : t + length] = 0.0
            export[m, t : t + length] = False
            labels.append(label(kind, SOURCE, key, intervals=length, last=grid.iso[t + length - 1]))
        elif kind == "voltage_out_of_range":
            low, high = (170.0, 195.0) if rng.random() < 0.5 else (265.0, 280.0)
            voltage[m, t] = round(float(rng.uniform(low, high)), 1)
            labels.append(label(kind, SOURCE, key, voltage_v=voltage[m, t]))
        elif kind == "clock_shift":
            shift = int(rng.choice([-1, 1])) * int(rng.integers(1, config.interval_minutes))
            shifted = pd.DatetimeIndex([grid.utc[t] + timedelta(minutes=shift)]).tz_convert(config.timezone)
            starts[(m, t)] = iso_with_offset(shifted)[0]
            labels.append(
                label(
                    kind,
                    SOURCE,
                    {**key, "reading_start": starts[(m, t)]},
                    expected_reading_start=grid.iso[t],
                    shift_minutes=shift,
                )
            )
        elif kind == "missing_interval":
            labels.append(label(kind, SOURCE, key))

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
            fault = faults.get((m, t))
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
                payload, variant = malform(SOURCE, record, rng)
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
            elif fault == "duplicate_conflict":
                nudge = -0.01 if x_l[m][t] else 0.01  # keeps the sign, so only the value conflicts
                conflicting = round(e_l[m][t] * float(rng.uniform(1.2, 2.0)) + nudge, 4)
                resent[day].append(json.dumps({**record, "energy_kwh": conflicting}))
                labels.append(label(fault, SOURCE, key, energy_kwh=[e_l[m][t], conflicting]))

    messages: dict[date, list[str]] = {}
    for day in sorted(set(grid.day)):
        profile = [json.dumps({"records": batches[(m, day)]}) for m in range(n) if batches.get((m, day))]
        messages[day] = profile + singles[day] + resent[day]
    return messages, labels
