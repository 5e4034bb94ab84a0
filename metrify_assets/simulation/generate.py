"""`simulate`: the whole synthetic run, deterministic by seed."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from metrify_assets.simulation.config import Simulation, SimulationConfig
from metrify_assets.simulation.grid_status import grid_messages
from metrify_assets.simulation.meter_readings import meter_messages
from metrify_assets.simulation.registry import build_registry
from metrify_assets.simulation.timegrid import local_grid
from metrify_assets.simulation.weather import weather_messages

STAGES = ("meter registry", "meter readings", "grid status", "weather observations")


def simulate(config: SimulationConfig, on_stage: Callable[[str], None] | None = None) -> Simulation:
    """Generate registry, messages and labels. Each part draws from its own child seed, so e.g. more
    weather stations do not change the meter readings. `on_stage` is told when a stage finishes."""
    registry_rng, meter_rng, grid_rng, weather_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(config.seed).spawn(len(STAGES))
    )

    def done(stage: str) -> None:
        if on_stage is not None:
            on_stage(stage)

    meters = build_registry(config, registry_rng)
    done(STAGES[0])
    intervals = local_grid(config.start, config.days, config.interval_minutes, config.timezone)
    readings, meter_labels = meter_messages(config, meters, intervals, meter_rng)
    done(STAGES[1])
    minutes = local_grid(config.start, config.days, config.grid_interval_minutes, config.timezone)
    grid, grid_labels = grid_messages(config, minutes, grid_rng)
    done(STAGES[2])
    observations = local_grid(config.start, config.days, config.weather_interval_minutes, config.timezone)
    weather, weather_labels = weather_messages(config, observations, weather_rng)
    done(STAGES[3])
    return Simulation(
        config=config,
        messages_by_day={"meter_readings": readings, "grid_status": grid, "weather_observations": weather},
        meters=meters,
        labels=meter_labels + grid_labels + weather_labels,
    )
