"""The synthetic meter registry, shaped like `ops.meters` (storage/migrations/)."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd

from metrify_assets.contracts import METER_REGISTRY_COLUMNS
from metrify_assets.simulation.config import SimulationConfig

SEGMENTS = ("residential", "commercial", "industrial")
SEGMENT_SHARES = (0.8, 0.15, 0.05)
TARIFFS = {
    "residential": ("flat", "economy7", "time_of_use"),
    "commercial": ("business_flat", "business_time_of_use"),
    "industrial": ("industrial_half_hourly",),
}


def meter_ids(count: int) -> list[str]:
    return [f"MTR-{i:06d}" for i in range(1, count + 1)]


def grid_node_ids(count: int) -> list[str]:
    return [f"GN-{i:03d}" for i in range(1, count + 1)]


def station_ids(count: int) -> list[str]:
    return [f"WX-{i:03d}" for i in range(1, count + 1)]


def build_registry(config: SimulationConfig, rng: np.random.Generator) -> pd.DataFrame:
    """One row per meter. Each region has a home weather station and grid node, so meters near each
    other share weather and grid, as the enrichment joins expect."""
    n = config.meters
    segment = rng.choice(SEGMENTS, size=n, p=SEGMENT_SHARES)
    region_idx = rng.integers(0, len(config.regions), size=n)
    stations = station_ids(config.weather_stations)
    nodes = grid_node_ids(config.grid_nodes)
    tariff = [TARIFFS[s][int(rng.integers(0, len(TARIFFS[s])))] for s in segment]
    first_install = date(2015, 1, 1)
    span = (config.start - first_install).days
    installed = [first_install + timedelta(days=int(d)) for d in rng.integers(0, span, size=n)]
    return pd.DataFrame(
        {
            "meter_id": meter_ids(n),
            "segment": segment,
            "region": [config.regions[i] for i in region_idx],
            "weather_station_id": [stations[i % len(stations)] for i in region_idx],
            "grid_node_id": [nodes[i % len(nodes)] for i in region_idx],
            "tariff": tariff,
            "timezone": config.timezone,
            "installed_on": installed,
        },
        columns=list(METER_REGISTRY_COLUMNS),
    )
