"""Synthetic grid samples for the grid tests: a frequency deviation profile at a fixed step."""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace

import numpy as np
import pandas as pd

START = pd.Timestamp("2026-01-05T10:00:00Z")


def profile(*parts: tuple[float, float], step_s: float = 10.0) -> np.ndarray:
    """Deviations (Hz) from (minutes, deviation) parts, one sample per `step_s`."""
    return np.concatenate([np.full(round(minutes * 60 / step_s), dev) for minutes, dev in parts])


def samples(
    deviation_hz: Sequence[float] | np.ndarray,
    node: str = "GN-1",
    start: pd.Timestamp = START,
    step_s: float = 10.0,
    voltage_v: Sequence[float | None] | None = None,
    load_mw: Sequence[float | None] | None = None,
    capacity_mw: float | None = None,
) -> pd.DataFrame:
    """Raw samples (analysis.INPUT_COLUMNS) of one node, 50 Hz + deviation."""
    n = len(deviation_hz)
    return pd.DataFrame(
        {
            "grid_node_id": node,
            "measured_at": start + pd.to_timedelta(np.arange(n) * step_s, unit="s"),
            "frequency_hz": 50.0 + np.asarray(deviation_hz, dtype=float),
            "voltage_v": list(voltage_v) if voltage_v is not None else [None] * n,
            "load_mw": list(load_mw) if load_mw is not None else [None] * n,
            "capacity_mw": [capacity_mw] * n,
        }
    )


def at(minutes: float, seconds: float = 0.0) -> pd.Timestamp:
    return START + pd.Timedelta(minutes=minutes, seconds=seconds)


def single(frame: pd.DataFrame) -> SimpleNamespace:
    """The one row of `frame`, its columns as attributes."""
    (record,) = frame.to_dict("records")
    return SimpleNamespace(**{str(k): v for k, v in record.items()})


def rows(frame: pd.DataFrame) -> list[SimpleNamespace]:
    return [SimpleNamespace(**{str(k): v for k, v in r.items()}) for r in frame.to_dict("records")]
