"""Read query results into DataFrames over a psycopg connection (no SQLAlchemy needed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import psycopg
from psycopg.adapt import Loader
from psycopg.pq import Format

_PG_EPOCH_US = 946_684_800_000_000  # PostgreSQL counts microseconds from 2000-01-01, numpy from 1970
_NAT = np.iinfo(np.int64).min  # numpy's NaT: a NULL timestamp


class _MicrosLoader(Loader):
    """A binary timestamp as its microsecond count: no `datetime` object per value for pandas to parse
    back (most of the time of reading a day of readings, before)."""

    format = Format.BINARY

    def load(self, data: Any) -> int:
        return int.from_bytes(data, "big", signed=True)


def read_frame(
    conn: psycopg.Connection, query: str, params: Mapping[str, Any] | Sequence[Any] | None = None
) -> pd.DataFrame:
    """Run `query` and return its rows with the cursor's column names (timestamps stay tz-aware, in the
    session's time zone, as psycopg gives them)."""
    with conn.cursor(binary=True) as cur:
        for name in ("timestamptz", "timestamp"):
            cur.adapters.register_loader(name, _MicrosLoader)
        cur.execute(query.encode(), params)
        description = cur.description or []
        rows = cur.fetchall()
    names = [c.name for c in description]
    if not rows:
        return pd.DataFrame(rows, columns=names)
    types = conn.adapters.types
    timestamp_oids = {types["timestamptz"].oid: True, types["timestamp"].oid: False}
    columns: dict[int, Any] = {}  # by position: a query may name two columns alike
    for i, (column, values) in enumerate(zip(description, zip(*rows, strict=True), strict=True)):
        aware = timestamp_oids.get(column.type_code)
        if aware is None:
            columns[i] = values
            continue
        micros = np.fromiter(
            (_NAT if v is None else v + _PG_EPOCH_US for v in values), dtype=np.int64, count=len(values)
        )
        stamps = pd.DatetimeIndex(micros.view("datetime64[us]"))
        columns[i] = stamps.tz_localize("UTC").tz_convert(conn.info.timezone) if aware else stamps
    frame = pd.DataFrame(columns)
    frame.columns = pd.Index(names)
    return frame
