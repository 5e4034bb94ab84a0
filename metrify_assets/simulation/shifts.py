"""A subtle fault: a meter that reads +/-25-35 % off for several days (tampered, or a mis-wired current
transformer), as a step or as a drift that reaches its factor halfway through the episode.

Every reading looks plausible on its own, so no record rule and no per-reading score should see it;
only a comparison with what the meter usually uses can. The register follows the shifted readings
(the meter measures wrongly, it does not misreport). Drawn from its own random stream and only when
`shift_share` > 0, so a run without shifts is the same, byte for byte, as before the fault existed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from metrify_assets.contracts import METER_READINGS
from metrify_assets.simulation.config import SHIFT_FAULT, SimulationConfig
from metrify_assets.simulation.faults import Label, label
from metrify_assets.simulation.registry import BLOCK, per_meter_blocks
from metrify_assets.simulation.timegrid import TimeGrid

if TYPE_CHECKING:  # meter_readings applies the shifts: importing it here would be circular
    from metrify_assets.simulation.meter_readings import MeterArrays

MIN_DAYS, MAX_DAYS = 3, 7
MIN_SHIFT, MAX_SHIFT = 0.25, 0.35
STREAM = 7  # the shift stream's key next to the seed: independent of every other draw


@dataclass(frozen=True)
class Shift:
    meter: int  # row in the registry
    first: date  # local days, inclusive
    last: date
    factor: float  # the reading's multiplier once the shift is complete
    variant: str  # step or drift


def draw_shifts(config: SimulationConfig, meters: int) -> list[Shift]:
    """One episode for each meter picked with probability `shift_share`, inside the run and not
    before `shift_from`; an episode that would run past the end is cut there. Meters draw in blocks
    (registry.BLOCK), so whether a meter shifts, and by how much, does not depend on how many meters
    the run has; where its episode falls is drawn within the run's days."""
    if config.shift_share <= 0:
        return []
    drawn = per_meter_blocks(
        meters, lambda block: np.random.default_rng([config.seed, STREAM, block]).random((BLOCK, 6))
    )
    earliest = max(config.shift_from or config.start, config.start)
    end = config.start + timedelta(days=config.days - 1)
    shifts = []
    for m in np.flatnonzero(drawn[:, 0] < config.shift_share).tolist():
        length_u, first_u, sign_u, factor_u, variant_u = drawn[m, 1:].tolist()
        length = MIN_DAYS + int(length_u * (MAX_DAYS - MIN_DAYS + 1))
        room = (end - earliest).days - length + 1
        first = earliest + timedelta(days=int(first_u * (room + 1)) if room > 0 else 0)
        last = min(first + timedelta(days=length - 1), end)
        sign = 1.0 if sign_u < 0.5 else -1.0
        factor = 1.0 + sign * (MIN_SHIFT + (MAX_SHIFT - MIN_SHIFT) * factor_u)
        variant = "step" if variant_u < 0.5 else "drift"
        if first <= end:
            shifts.append(Shift(m, first, last, round(factor, 4), variant))
    return shifts


def _multiplier(shift: Shift, grid: TimeGrid) -> np.ndarray:
    """Per interval of the run: 1 outside the episode, the (ramping, for a drift) factor inside."""
    inside = np.array([shift.first <= day <= shift.last for day in grid.day])
    if shift.variant == "step":
        progress = np.ones(len(grid))
    else:
        elapsed = (grid.utc - grid.utc[int(np.argmax(inside))]).total_seconds().to_numpy()
        span = ((shift.last - shift.first).days + 1) * 86_400 / 2
        progress = np.clip(elapsed / span, 0.0, 1.0)
    return np.where(inside, 1.0 + (shift.factor - 1.0) * progress, 1.0)


def apply_shifts(
    config: SimulationConfig, meters: pd.DataFrame, grid: TimeGrid, arrays: MeterArrays
) -> tuple[MeterArrays, list[Label]]:
    """The readings with every drawn shift applied, and one label per affected meter-day."""
    shifts = draw_shifts(config, len(meters))
    if not shifts:
        return arrays, []
    energy, register = arrays.energy.copy(), arrays.register.copy()
    ids = meters["meter_id"].tolist()
    labels: list[Label] = []
    for shift in shifts:
        m = shift.meter
        multiplier = _multiplier(shift, grid)
        energy[m] = np.round(arrays.energy[m] * multiplier, 4) + 0.0
        initial = arrays.register[m, 0] - max(arrays.energy[m, 0], 0.0)
        register[m] = np.round(initial + np.cumsum(np.maximum(energy[m], 0.0)), 4)
        day_of = np.array(grid.day)
        for day in sorted({d for d in grid.day if shift.first <= d <= shift.last}):
            labels.append(
                label(
                    SHIFT_FAULT,
                    METER_READINGS.source,
                    {"meter_id": ids[m], "local_date": day.isoformat()},
                    start=shift.first.isoformat(),
                    end=shift.last.isoformat(),
                    factor=shift.factor,
                    variant=shift.variant,
                    day_factor=round(float(multiplier[day_of == day].mean()), 4),
                )
            )
    shifted = replace(arrays, energy=energy, register=register)  # a positive factor keeps the sign
    return shifted, labels
