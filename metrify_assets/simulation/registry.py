"""The synthetic meter registry, shaped like `ops.meters` (storage/migrations/)."""

from __future__ import annotations

from collections.abc import Callable
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
# Meters draw their attributes in blocks of this many, each block from its own stream and always
# whole, so a meter's attributes do not depend on how many meters a run has.
BLOCK = 1024
# Install dates fall in FIRST_INSTALL..INSTALLS_UNTIL, whatever the run's first day, and before it.
FIRST_INSTALL = date(2015, 1, 1)
INSTALLS_UNTIL = date(2026, 1, 1)


def per_meter_blocks(n: int, draw: Callable[[int], np.ndarray]) -> np.ndarray:
    """`draw(block)`, one row per meter of that block of BLOCK meters, for every block that covers `n`
    meters, cut to `n` rows. A block is always drawn whole from a stream of its own, so a meter's row
    depends on its number and not on how many meters there are."""
    return np.concatenate([draw(block) for block in range(-(-n // BLOCK))])[:n]


def meter_ids(count: int) -> list[str]:
    return [f"MTR-{i:06d}" for i in range(1, count + 1)]


def grid_node_ids(count: int) -> list[str]:
    return [f"GN-{i:03d}" for i in range(1, count + 1)]


def station_ids(count: int) -> list[str]:
    return [f"WX-{i:03d}" for i in range(1, count + 1)]


def install_dates(share: np.ndarray, start: date) -> list[date]:
    """Install dates at `share` (0..1) of FIRST_INSTALL..INSTALLS_UNTIL. A run starting before
    INSTALLS_UNTIL wraps the dates on or after its first day back into the span before it, so every
    meter is installed before its first reading and only those meters' dates depend on the start."""
    end = min(start, INSTALLS_UNTIL)
    first = min(FIRST_INSTALL, end - timedelta(days=365))
    offsets = (share * (INSTALLS_UNTIL - first).days).astype(np.int64) % (end - first).days
    return [first + timedelta(days=int(d)) for d in offsets]


def build_registry(config: SimulationConfig, rng: np.random.Generator) -> pd.DataFrame:
    """One row per meter. Each region has a home weather station and grid node, so meters near each
    other share weather and grid, as the enrichment joins expect.

    The first three meters take one segment each, in an order of the seed, so a network of three
    meters or more has residential, commercial and industrial meters (their load shapes, tariffs and
    forecast series); the others draw theirs by SEGMENT_SHARES.

    A meter's attributes depend only on the seed (`rng`), its number and the network (regions,
    stations, grid nodes, timezone), not on the run's meter count, days or start (install dates
    aside, for a run starting before INSTALLS_UNTIL): a later or larger run of the same seed sends
    the same registry rows again, and the registry's history (`dim_meter`) gains no version."""
    n = config.meters
    key = int(rng.integers(2**63))

    def draw(block: int) -> np.ndarray:
        block_rng = np.random.default_rng([key, block])
        segment = block_rng.choice(len(SEGMENTS), size=BLOCK, p=SEGMENT_SHARES)
        region = block_rng.integers(0, len(config.regions), size=BLOCK)
        tariff, installed = block_rng.random(BLOCK), block_rng.random(BLOCK)
        if block == 0:  # the first meters take one segment each: a small network has every segment
            segment[: len(SEGMENTS)] = block_rng.permutation(len(SEGMENTS))
        return np.column_stack([segment, region, tariff, installed])

    segment_drawn, region_drawn, tariff_drawn, installed = per_meter_blocks(n, draw).T
    segment = [SEGMENTS[i] for i in segment_drawn.astype(np.int64)]
    region_idx = region_drawn.astype(np.int64)
    stations = station_ids(config.weather_stations)
    nodes = grid_node_ids(config.grid_nodes)
    tariff = [TARIFFS[s][int(u * len(TARIFFS[s]))] for s, u in zip(segment, tariff_drawn, strict=True)]
    return pd.DataFrame(
        {
            "meter_id": meter_ids(n),
            "segment": segment,
            "region": [config.regions[i] for i in region_idx],
            "weather_station_id": [stations[i % len(stations)] for i in region_idx],
            "grid_node_id": [nodes[i % len(nodes)] for i in region_idx],
            "tariff": tariff,
            "timezone": config.timezone,
            "installed_on": install_dates(installed, config.start),
        },
        columns=list(METER_REGISTRY_COLUMNS),
    )
