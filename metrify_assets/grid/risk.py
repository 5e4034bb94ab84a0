"""A risk score per grid node and hour, from frequency, voltage and load margin.

Each component is a ramp from 0 (comfortable) to 1 (at its limit), clipped to [0, 1]:

    ramp(x, lo, hi) = min(1, max(0, (x - lo) / (hi - lo)))

    r_frequency = ramp(max |steady-state deviation|, standard range, max steady-state deviation)
                  (Continental Europe: 0 within +/-50 mHz, 1 at +/-200 mHz, where the emergency starts)
    r_voltage   = ramp(max |10-minute mean voltage - nominal| / nominal, 5 %, 10 %)
                  (1 at the EN 50160 limit of +/-10 %)
    r_load      = ramp(max load / capacity, 80 %, 100 %)

    risk = 1 - (1 - r_frequency) (1 - r_voltage) (1 - r_load)   over the components the hour has

so the score is in [0, 1], never below its largest component, 1 as soon as one component is at its
limit, and equal to the only component when there is one. A component without data (a frequency-only
node has no voltage or load; an hour with too few samples for a steady-state deviation has no
frequency component) is left out, not taken as 0: `risk_components` names those used (e.g.
`frequency` or `frequency,voltage,load`), and the score is null when there are none.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from metrify_assets.grid.areas import SynchronousArea
from metrify_assets.grid.stability import VOLTAGE_TOLERANCE

COMPONENTS = ("frequency", "voltage", "load")
RISK_COLUMNS = ["risk_frequency", "risk_voltage", "risk_load", "risk_score", "risk_components"]


@dataclass(frozen=True)
class RiskConfig:
    voltage_comfort_share: float = 0.05  # |10-minute mean - nominal| / nominal at which voltage risk starts
    voltage_limit_share: float = VOLTAGE_TOLERANCE  # ... and reaches 1 (EN 50160)
    load_comfort_utilisation: float = 0.8  # load / capacity at which load risk starts
    load_limit_utilisation: float = 1.0  # ... and reaches 1


def ramp(x: pd.Series, lo: float | pd.Series, hi: float | pd.Series) -> pd.Series:
    """(x - lo) / (hi - lo) clipped to [0, 1]; NaN stays NaN."""
    return ((x - lo) / (hi - lo)).clip(lower=0.0, upper=1.0)


def risk(figures: pd.DataFrame, areas: dict[str, SynchronousArea], config: RiskConfig) -> pd.DataFrame:
    """RISK_COLUMNS for rows of `stability.window_figures` (same index)."""
    standard = figures["area"].map(lambda a: areas[a].standard_range_hz).astype(float)
    steady_max = figures["area"].map(lambda a: areas[a].max_steady_state_deviation_hz).astype(float)
    parts = pd.DataFrame(
        {
            "risk_frequency": ramp(figures["max_abs_steady_state_hz"].astype(float), standard, steady_max),
            "risk_voltage": ramp(
                figures["max_voltage_deviation_share"].astype(float),
                config.voltage_comfort_share,
                config.voltage_limit_share,
            ),
            "risk_load": ramp(
                1.0 - figures["min_load_margin_share"].astype(float),
                config.load_comfort_utilisation,
                config.load_limit_utilisation,
            ),
        },
        index=figures.index,
    )
    present = parts.notna()
    safe = (1.0 - parts).where(present, 1.0)
    score = 1.0 - safe.prod(axis=1)
    parts["risk_score"] = score.where(present.any(axis=1), np.nan)
    parts["risk_components"] = [
        ",".join(c for c, has in zip(COMPONENTS, row, strict=True) if has) for row in present.to_numpy()
    ]
    return parts
