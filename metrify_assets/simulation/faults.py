"""Choosing where faults go, corrupting messages, and the ground-truth labels that record them."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import date

import numpy as np
import numpy.typing as npt
import pandas as pd

from metrify_assets.contracts import contract_for
from metrify_assets.simulation.timegrid import TimeGrid, day_stream, per_day

Record = dict[str, object]
Label = dict[str, object]

NO_FAULT = -1
RECORD_STREAM = 0xFA017  # the tag of a record's own stream (`record_stream`), unlike any other tag


def choose_faults(
    rng: np.random.Generator, shape: tuple[int, ...], rate: float, kinds: Sequence[str]
) -> npt.NDArray[np.int64]:
    """Per record: the index into `kinds` of its fault, or NO_FAULT. Each record is hit with
    probability `rate`, the kind drawn uniformly."""
    hit = rng.random(shape) < rate
    kind = rng.integers(0, len(kinds), size=shape)
    return np.where(hit, kind, NO_FAULT)


def faults_per_day(
    grid: TimeGrid, key: int, tag: int, series: int, rate: float, kinds: Sequence[str]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """`choose_faults` for `series` series (grid nodes, weather stations) over the grid, and a uniform
    draw per record for the fault's details, from a stream of the key, the tag and each local day: a
    record's fault depends on its series and instant, not on the grid's span."""

    def draw(day: date, steps: int) -> npt.NDArray[np.float64]:
        rng = day_stream(key, tag, day)
        return np.stack([choose_faults(rng, (series, steps), rate, kinds), rng.random((series, steps))])

    chosen, details = per_day(grid, draw)
    return chosen.astype(np.int64), details


def record_stream(key: int, series: int, instant: pd.Timestamp) -> np.random.Generator:
    """The stream of one record's malformation: of the key, the series (meter, node, station) and the
    record's minute, so it is the same whatever else the run holds."""
    return np.random.default_rng([key, RECORD_STREAM, series, int(instant.timestamp()) // 60])


def label(
    kind: str, source: str, key: Mapping[str, object] | None, payload: str | None = None, **detail: object
) -> Label:
    """One ground-truth entry; `detail` says what was changed (original values, variant)."""
    return {
        "kind": kind,
        "source": source,
        "key": dict(key) if key else None,
        "payload": payload,
        "detail": detail,
    }


def natural_key(source: str, record: Mapping[str, object]) -> dict[str, object]:
    return {name: record[name] for name in contract_for(source).key}


def malform(source: str, record: Record, rng: np.random.Generator) -> tuple[str, str]:
    """A broken message for `record`: invalid JSON, a required field missing, or a wrong type.
    Returns (payload, variant)."""
    contract = contract_for(source)
    variant = ("invalid_json", "missing_field", "wrong_type")[int(rng.integers(0, 3))]
    if variant == "invalid_json":
        text = json.dumps(record)
        return text[: -int(rng.integers(1, min(12, len(text) - 1)))], variant
    broken = dict(record)
    if variant == "missing_field":
        droppable = [name for name in contract.required if name not in contract.key]
        del broken[droppable[int(rng.integers(0, len(droppable)))]]
    else:
        numeric = [f.name for f in contract.fields if f.required and f.type in ("int", "float")]
        broken[numeric[int(rng.integers(0, len(numeric)))]] = "n/a"
    return json.dumps(broken), variant
