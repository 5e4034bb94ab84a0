"""Daily consumption shapes by customer segment, on the local clock (relative units, mean near 0.5-1).

Residential: morning and evening peaks, later and flatter at weekends. Commercial: business hours on
weekdays. Industrial: two shifts (06-22) on weekdays, a low base at weekends. Solar: a midday bell.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def _bump(hour: Array, centre: float, width: float) -> Array:
    """A Gaussian bump on the 24-hour circle."""
    d = np.abs(hour - centre)
    d = np.minimum(d, 24.0 - d)
    return np.exp(-0.5 * (d / width) ** 2)


def _window(hour: Array, opens: float, closes: float, edge: float = 0.4) -> Array:
    """Smooth on/off between two clock times."""
    return 1.0 / (1.0 + np.exp(-(hour - opens) / edge)) / (1.0 + np.exp((hour - closes) / edge))


def residential(hour: Array, weekend: BoolArray) -> Array:
    weekday = 0.3 + 0.8 * _bump(hour, 7.5, 0.9) + 0.25 * _bump(hour, 13.0, 2.0) + 1.3 * _bump(hour, 19.0, 1.7)
    weekend_shape = (
        0.3 + 0.6 * _bump(hour, 9.5, 1.5) + 0.5 * _bump(hour, 13.5, 2.5) + 1.2 * _bump(hour, 18.5, 2.0)
    )
    return np.where(weekend, weekend_shape, weekday)


def commercial(hour: Array, weekend: BoolArray) -> Array:
    return np.where(weekend, 0.25 + 0.15 * _window(hour, 10.0, 16.0), 0.25 + 1.0 * _window(hour, 8.0, 18.0))


def industrial(hour: Array, weekend: BoolArray) -> Array:
    shifts = 0.35 + 0.65 * _window(hour, 6.0, 22.0, edge=0.25) - 0.1 * _bump(hour, 14.0, 0.3)
    return np.where(weekend, 0.35 + 0.05 * _window(hour, 8.0, 12.0), shifts)


SEGMENT_SHAPES = {"residential": residential, "commercial": commercial, "industrial": industrial}
# kWh per 15 minutes at relative load 1.0 (a home ~7 kWh/day, a shop ~100, a plant ~2,000).
SEGMENT_SCALE_KWH = {"residential": 0.12, "commercial": 1.6, "industrial": 35.0}


def solar(hour: Array) -> Array:
    """Relative PV output, zero at night, peak 1.0 at 13:00 local (clock time, so BST shifts it)."""
    return np.clip(np.sin(np.pi * (hour - 7.0) / 12.0), 0.0, None) ** 1.5


def network(hour: Array, weekend: BoolArray) -> Array:
    """A substation's mixed load: mostly residential with a commercial daytime share."""
    return 0.6 * residential(hour, weekend) + 0.4 * commercial(hour, weekend)
