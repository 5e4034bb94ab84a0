"""Time axes of a run: UTC instants on a fixed step, expressed in a local timezone with its offset.

Generating on UTC instants is what makes DST right: a 23-hour local day simply has fewer instants
(92 quarter-hours on 2026-03-29 in Europe/London), and every timestamp carries the offset in force.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import pairwise

import numpy as np
import numpy.typing as npt
import pandas as pd

from metrify_assets.contracts import iso_with_offset


@dataclass(frozen=True)
class TimeGrid:
    """Instants `utc`, their local ISO strings, local clock hour, weekday and local day."""

    utc: pd.DatetimeIndex
    iso: list[str]  # e.g. "2026-03-29T02:00:00+01:00"
    hour: npt.NDArray[np.float64]  # local clock time in hours, 0..24
    weekend: npt.NDArray[np.bool_]
    day: list[date]  # local calendar day of each instant

    def __len__(self) -> int:
        return len(self.utc)


def local_grid(start: date, days: int, step_minutes: int, timezone: str) -> TimeGrid:
    """All instants from local midnight of `start` to local midnight `days` later, every step."""
    first = pd.Timestamp(start).tz_localize(timezone)
    end = pd.Timestamp(start + timedelta(days=days)).tz_localize(timezone)
    utc = pd.date_range(
        first.tz_convert("UTC"), end.tz_convert("UTC"), freq=f"{step_minutes}min", inclusive="left"
    )
    local = utc.tz_convert(timezone)
    hour = np.asarray(local.hour + local.minute / 60.0, dtype=np.float64)
    weekend = np.asarray(local.day_of_week >= 5, dtype=np.bool_)
    return TimeGrid(
        utc=utc,
        iso=iso_with_offset(local),
        hour=hour,
        weekend=weekend,
        day=[ts.date() for ts in local],
    )


def day_spans(grid: TimeGrid) -> list[tuple[date, int, int]]:
    """The grid's local days, each with its first and one-past-last instant."""
    ordinals = np.fromiter((d.toordinal() for d in grid.day), dtype=np.int64, count=len(grid))
    cuts = [0, *(np.flatnonzero(np.diff(ordinals)) + 1).tolist(), len(grid)]
    return [(grid.day[a], a, b) for a, b in pairwise(cuts)]


def day_stream(key: int, tag: int, day: date) -> np.random.Generator:
    """The stream of one local day's draws of one kind (`tag`) of a part of the simulation (`key`)."""
    return np.random.default_rng([key, tag, day.toordinal()])


def per_day(grid: TimeGrid, draw: Callable[[date, int], npt.NDArray[np.float64]]) -> npt.NDArray[np.float64]:
    """`draw(day, steps)`, values (..., steps) for each local day of the grid, joined along the last axis.
    Drawn from streams of the day, a value at an instant depends on its day, not on the grid's span."""
    return np.concatenate([draw(day, end - begin) for day, begin, end in day_spans(grid)], axis=-1)


def daily_ou(
    stream: Callable[[date], np.random.Generator],
    grid: TimeGrid,
    step_minutes: int,
    series: int,
    std: float,
    correlation_steps: float,
) -> npt.NDArray[np.float64]:
    """Ornstein-Uhlenbeck paths (series x steps), stationary std `std`, continuous across days, whose
    value at an instant depends only on `stream`'s draws for its local day and the next, not on where
    the grid starts or ends.

    Each local day has a path of its own (from `stream(day)`) that begins `overlap` steps before the
    day's midnight; over a day's last `overlap` steps its path fades into the next day's (weights the
    cosine and sine of an angle rising to a right angle: their squares sum to 1, so the std stays
    `std`, and midnight brings no jump). A path's draws are time-major, so its first steps are the
    same whatever its length. The recursion is one short loop over time, vectorised across the days
    and series.
    """
    a = float(np.exp(-1.0 / correlation_steps))
    per_day = 24 * 60 // step_minutes
    overlap = int(min(np.ceil(2 * correlation_steps), (per_day * 23 // 24) // 2))
    spans = day_spans(grid)
    after = spans[-1][0] + timedelta(days=1)
    lengths = [overlap + end - begin for _, begin, end in spans] + [overlap]
    days = [d for d, _, _ in spans] + [after]
    steps = max(lengths)
    shocks = np.zeros((steps, len(days), series))
    first = np.empty((len(days), series))
    for i, (day, length) in enumerate(zip(days, lengths, strict=True)):
        rng = stream(day)
        first[i] = rng.standard_normal(series) * std
        shocks[:length, i] = rng.standard_normal((length, series)) * std * np.sqrt(1.0 - a * a)
    paths = np.empty((steps, len(days), series))
    paths[0] = first
    for k in range(1, steps):
        paths[k] = a * paths[k - 1] + shocks[k]
    out = np.empty((series, len(grid)))
    angle = np.pi / 2 * np.arange(1, overlap + 1) / (overlap + 1)
    for i, (_, begin, end) in enumerate(spans):
        values = paths[overlap : overlap + end - begin, i].copy()
        if overlap:
            values[-overlap:] = (
                np.cos(angle)[:, None] * values[-overlap:] + np.sin(angle)[:, None] * paths[:overlap, i + 1]
            )
        out[:, begin:end] = values.T
    return out
