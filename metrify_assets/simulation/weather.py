"""Weather-station observations: diurnal temperature, humidity that falls as it warms and rises in
rain, slowly drifting pressure, gusty wind and occasional rain spells (March in Britain)."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import date

import numpy as np

from metrify_assets.contracts import WEATHER_OBSERVATIONS
from metrify_assets.simulation.config import WEATHER_FAULTS, SimulationConfig
from metrify_assets.simulation.faults import (
    NO_FAULT,
    Label,
    Record,
    faults_per_day,
    label,
    malform,
    record_stream,
)
from metrify_assets.simulation.registry import station_ids
from metrify_assets.simulation.timegrid import TimeGrid, daily_ou, day_stream, per_day

SOURCE = WEATHER_OBSERVATIONS.source
RAIN_THRESHOLD = 1.0  # a standardised OU signal above this means rain: ~16 % of the time
# Tags of the weather's streams next to its key.
STATIONS, TEMPERATURE, RAIN, PRESSURE, WIND, NOISE, FAULTS = range(7)


def weather_messages(
    config: SimulationConfig, grid: TimeGrid, rng: np.random.Generator
) -> tuple[dict[date, list[str]], list[Label]]:
    """Messages per local day, one observation each, and the labels of injected faults."""
    stations = station_ids(config.weather_stations)
    n, steps = len(stations), len(grid)
    per_hour = 60.0 / config.weather_interval_minutes
    key = int(rng.integers(2**63))

    def ou(tag: int, std: float, correlation_hours: float) -> np.ndarray:
        return daily_ou(
            lambda day: day_stream(key, tag, day),
            grid,
            config.weather_interval_minutes,
            n,
            std,
            correlation_hours * per_hour,
        )

    climate = np.random.default_rng([key, STATIONS])  # each station's own climate
    mean_c = climate.uniform(5.0, 11.0, size=n)[:, None]
    amplitude = climate.uniform(2.5, 5.0, size=n)[:, None]
    mean_hpa = climate.normal(1012.0, 6.0, size=n)[:, None]
    mean_wind = climate.uniform(2.0, 6.0, size=n)[:, None]
    temperature = (
        mean_c + amplitude * np.cos(2 * np.pi * (grid.hour - 15.0) / 24.0)[None, :] + ou(TEMPERATURE, 1.0, 3)
    )
    raining = ou(RAIN, 1.0, 2) > RAIN_THRESHOLD

    def noise(day: date, k: int) -> np.ndarray:
        r = day_stream(key, NOISE, day)
        return np.stack([r.exponential(0.4, size=(n, k)), r.normal(0.0, 2.0, size=(n, k))])

    rain, spread = per_day(grid, noise)
    precipitation = np.where(raining, rain, 0.0)
    humidity = np.clip(78.0 - 3.0 * (temperature - mean_c) + 12.0 * raining + spread, 25.0, 100.0)
    pressure = mean_hpa + ou(PRESSURE, 4.0, 24)
    wind = np.abs(mean_wind + ou(WIND, 1.8, 1) + 1.5 * raining)

    columns = {
        "temperature_c": np.round(temperature, 1).tolist(),
        "humidity_pct": np.round(humidity, 1).tolist(),
        "pressure_hpa": np.round(pressure - 2.0 * raining, 1).tolist(),
        "wind_speed_ms": np.round(wind, 1).tolist(),
        "precipitation_mm": np.round(precipitation, 1).tolist(),
    }
    kinds, _ = faults_per_day(grid, key, FAULTS, n, config.fault_rate, WEATHER_FAULTS)
    labels: list[Label] = []
    messages: dict[date, list[str]] = defaultdict(list)
    for t in range(steps):
        for m in range(n):
            record: Record = {"station_id": stations[m], "observed_at": grid.iso[t]}
            record.update({name: values[m][t] for name, values in columns.items()})
            if kinds[m, t] != NO_FAULT:  # the only weather fault kind is malformed
                payload, variant = malform(SOURCE, record, record_stream(key, m, grid.utc[t]))
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
