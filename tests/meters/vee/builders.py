"""Hand-built meter-days for the VEE tests: a flat or shaped day of readings as VEE candidates."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from metrify_assets.meters.vee.grid import CANDIDATE_COLUMNS

CLOSED = pd.Timestamp("2030-01-01T00:00:00Z")


def day_starts(day: date, tz: str = "Europe/London", minutes: int = 15) -> pd.DatetimeIndex:
    """Interval starts (UTC) of a local day: 92, 96 or 100 quarter-hours around DST changes."""
    start = pd.Timestamp(day.isoformat()).tz_localize(tz)
    end = (pd.Timestamp(day.isoformat()) + pd.Timedelta(days=1)).tz_localize(tz)
    return pd.date_range(start, end, freq=f"{minutes}min", inclusive="left").tz_convert("UTC")


def readings(
    meter_id: str,
    starts: pd.DatetimeIndex,
    energy: np.ndarray | float = 0.25,
    register_from: float | None = None,
    minutes: int = 15,
    flags: list[str | None] | None = None,
) -> pd.DataFrame:
    """Stored candidates; `register_from` adds an import register ending each interval."""
    values = np.broadcast_to(np.asarray(energy, dtype="float64"), (len(starts),)).copy()
    register = register_from + np.cumsum(np.maximum(values, 0)) if register_from is not None else np.nan
    frame = pd.DataFrame(
        {
            "meter_id": meter_id,
            "reading_start": starts,
            "interval_minutes": float(minutes),
            "energy_kwh": values,
            "direction": np.where(values < 0, "export", "import"),
            "register_kwh": register,
            "status_flags": flags if flags is not None else [None] * len(starts),
            "batch_id": "b1",
            "origin": "stored",
            "ingest_reasons": "",
            "review_status": None,
            "reviewer": None,
        }
    )
    return frame[CANDIDATE_COLUMNS]


def quarantined(meter_id: str, start: pd.Timestamp, reasons: str, energy: float = 0.25) -> pd.DataFrame:
    row = readings(meter_id, pd.DatetimeIndex([start]), energy)
    return row.assign(origin="quarantined", ingest_reasons=reasons)


def registry(*meters: tuple[str, str, date | None]) -> pd.DataFrame:
    return pd.DataFrame(meters, columns=["meter_id", "timezone", "installed_on"])
