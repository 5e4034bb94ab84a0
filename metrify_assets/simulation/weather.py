"""Weather-station observations: diurnal temperature, humidity that falls as it warms and rises in
rain, slowly drifting pressure, gusty wind and occasional rain spells (March in Britain)."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import date

import numpy as np

from metrify_assets.contracts import WEATHER_OBSERVATIONS
from metrify_assets.simulation.config import WEATHER_FAULTS, SimulationConfig
from metrify_assets.simulation.faults import NO_FAULT, Label, Record, choose_faults, label, malform
from metrify_assets.simulation.registry import station_ids
from metrify_assets.simulation.timegrid import TimeGrid, ou_process

SOURCE = WEATHER_OBSERVATIONS.source
RAIN_THRESHOLD = 1.0  # a standardised OU signal above this means rain: ~16 % of the time


def weather_messages(
    config: SimulationConfig, grid: TimeGrid, rng: np.random.Generator
) -> tuple[dict[date, list[str]], list[Label]]:
    """Messages per local day, one observation each, and the labels of injected faults."""
    stations = station_ids(config.weather_stations)
    n, steps = len(stations), len(grid)
    per_hour = 60.0 / config.weather_interval_minutes
    mean_c = rng.uniform(5.0, 11.0, size=n)[:, None]
    amplitude = rng.uniform(2.5, 5.0, size=n)[:, None]
    temperature = (
        mean_c
        + amplitude * np.cos(2 * np.pi * (grid.hour - 15.0) / 24.0)[None, :]
        + ou_process(rng, steps, n, 1.0, 3 * per_hour)
    )
    raining = ou_process(rng, steps, n, 1.0, 2 * per_hour) > RAIN_THRESHOLD
    precipitation = np.where(raining, rng.exponential(0.4, size=(n, steps)), 0.0)
    humidity = 78.0 - 3.0 * (temperature - mean_c) + 12.0 * raining + rng.normal(0.0, 2.0, size=(n, steps))
    humidity = np.clip(humidity, 25.0, 100.0)
    pressure = rng.normal(1012.0, 6.0, size=n)[:, None] + ou_process(rng, steps, n, 4.0, 24 * per_hour)
    wind = np.abs(
        rng.uniform(2.0, 6.0, size=n)[:, None] + ou_process(rng, steps, n, 1.8, per_hour) + 1.5 * raining
    )

    columns = {
        "temperature_c": np.round(temperature, 1).tolist(),
        "humidity_pct": np.round(humidity, 1).tolist(),
        "pressure_hpa": np.round(pressure - 2.0 * raining, 1).tolist(),
        "wind_speed_ms": np.round(wind, 1).tolist(),
        "precipitation_mm": np.round(precipitation, 1).tolist(),
    }
    kinds = choose_faults(rng, (n, steps), config.fault_rate, WEATHER_FAULTS)
    labels: list[Label] = []
    messages: dict[date, list[str]] = defaultdict(list)
    for t in range(steps):
        for m in range(n):
            record: Record = {"station_id": stations[m], "observed_at": grid.iso[t]}
            record.update({name: values[m][t] for name, values in columns.items()})
            if kinds[m, t] != NO_FAULT:  # the only weather fault kind is malformed
                payload, variant = malform(SOURCE, record, rng)
                messages[grid.day[t]].append(payload)
                labels.append(
                    label(
                        WEATHER_FAULTS[int(kinds[m, t])],
                        SOURCE,
                        {"station_id": stations[m], "observed_at": grid.iso[t]},
                        payload,
                        variant=variant,
                    )
                )
            else:
                messages[grid.day[t]].append(json.dumps(record))
    return dict(messages), labels
