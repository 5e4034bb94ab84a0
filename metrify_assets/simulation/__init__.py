"""Synthetic smart-meter, grid and weather telemetry with labelled faults, for demos and tests."""

from metrify_assets.simulation.config import FAULT_KINDS, Simulation, SimulationConfig
from metrify_assets.simulation.generate import simulate
from metrify_assets.simulation.writer import WriteSummary, write_simulation

__all__ = ["FAULT_KINDS", "Simulation", "SimulationConfig", "WriteSummary", "simulate", "write_simulation"]
