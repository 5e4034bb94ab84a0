"""What a simulation run produces and what it is asked to produce."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from itertools import chain

import pandas as pd

from metrify_assets.grid.areas import area

DEFAULT_REGIONS = ("scotland", "north", "midlands", "london", "south-west")

# Fault kinds, named as the quality rules and the labels name them.
METER_FAULTS = (
    "missing_interval",
    "spike",
    "negative_energy",
    "zero_run",
    "duplicate_exact",
    "duplicate_conflict",
    "malformed",
    "clock_shift",
    "voltage_out_of_range",
)
GRID_FAULTS = ("frequency_out_of_range", "malformed")
WEATHER_FAULTS = ("malformed",)
# A system-wide sustained frequency deviation (simulation/grid_status.py), placed per run, not per record.
FREQUENCY_EVENT = "frequency_event"
FAULT_KINDS = tuple(dict.fromkeys(chain(METER_FAULTS, GRID_FAULTS, WEATHER_FAULTS, (FREQUENCY_EVENT,))))
# A meter-day fault, placed per meter (simulation/shifts.py) rather than per record, only on request.
SHIFT_FAULT = "consumption_shift"


@dataclass(frozen=True)
class SimulationConfig:
    """Size, period and fault rate of a synthetic run; the same config always gives the same data.

    The default start puts the spring DST change of Europe/London (2026-03-29) inside the run.
    The network is Great Britain's (its regions, Europe/London), so `grid_area` is `great_britain`:
    the frequency events are sized to that area's rules, and `metrify demo` judges the grid by it.
    `fault_rate` is the probability that any one record receives a fault. `shift_share` is the share
    of meters that read +/-25-35 % off for a few days (a consumption shift), none before `shift_from`.
    """

    meters: int = 200
    days: int = 2
    start: date = date(2026, 3, 28)
    seed: int = 42
    fault_rate: float = 0.01
    regions: tuple[str, ...] = DEFAULT_REGIONS
    grid_nodes: int = 5
    weather_stations: int = 5
    timezone: str = "Europe/London"
    interval_minutes: int = 15
    grid_interval_minutes: int = 1
    weather_interval_minutes: int = 10
    batch_share: float = 0.5  # share of meters whose head-end sends a day's load profile at once
    solar_share: float = 0.3  # share of residential meters with rooftop solar (valid export readings)
    shift_share: float = 0.0  # share of meters with a consumption shift (0: none, output unchanged)
    shift_from: date | None = None  # first local day a shift may start (None: the run's first day)
    frequency_events: int = 1  # sustained frequency drops (grid alert state); none if fault_rate 0
    grid_area: str = "great_britain"  # synchronous area of the simulated grid (grid/areas.py)

    def __post_init__(self) -> None:
        if self.meters < 1 or self.days < 1 or self.grid_nodes < 1 or self.weather_stations < 1:
            raise ValueError("meters, days, grid_nodes and weather_stations must be at least 1")
        if not 0.0 <= self.fault_rate <= 0.5:
            raise ValueError(f"fault_rate must be within 0..0.5, got {self.fault_rate}")
        if not 0.0 <= self.shift_share <= 1.0:
            raise ValueError(f"shift_share must be within 0..1, got {self.shift_share}")
        if not self.regions:
            raise ValueError("at least one region is needed")
        area(self.grid_area)  # a ValueError names the known areas
        if 60 % self.interval_minutes or 60 % self.weather_interval_minutes:
            raise ValueError("interval lengths must divide an hour")


@dataclass(frozen=True)
class Simulation:
    """Messages (contract v1 JSON strings) per source and local day, the meter registry, ground truth."""

    config: SimulationConfig
    messages_by_day: dict[str, dict[date, list[str]]]
    meters: pd.DataFrame
    labels: list[dict[str, object]] = field(default_factory=list)

    @property
    def messages(self) -> dict[str, list[str]]:
        """All messages of each source, day after day."""
        return {
            source: [m for day in sorted(days) for m in days[day]]
            for source, days in self.messages_by_day.items()
        }
