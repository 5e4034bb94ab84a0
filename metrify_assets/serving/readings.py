"""A meter's readings: the billing-grade VEE series where VEE has processed them, else as received.
Rows are read by the primary key `(meter_id, reading_start)` of both tables."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from metrify_assets.serving.pagination import CursorError, cursor_scope, decode_cursor, encode_cursor
from metrify_assets.serving.row_schemas import BOOKKEEPING_COLUMNS, Column

SERIES = (
    Column("reading_start", "string", "Start of the interval.", nullable=False, format="date-time"),
    Column("interval_minutes", "integer", "Length of the interval in minutes.", nullable=False),
    Column(
        "energy_kwh",
        "number",
        "Energy in kWh: VEE's billing-grade value where VEE processed the day (null for a missing or "
        "failed interval), else as received.",
    ),
    Column("direction", "string", "import or export.", nullable=False),
    Column(
        "status",
        "string",
        "actual, estimated, edited, missing or failed (VEE's), or received (VEE has not processed the day).",
        nullable=False,
    ),
    Column(
        "method",
        "string",
        "How VEE arrived at the value (actual, linear_interpolation, like_day, ...); none before VEE.",
        nullable=False,
    ),
    Column("original_kwh", "number", "The value as received, before VEE; null where nothing was received."),
    Column(
        "record_version",
        "integer",
        "The received reading's stored version; null for an interval VEE filled with nothing received.",
    ),
    BOOKKEEPING_COLUMNS["quality_flags"],
)
SERIES_COLUMNS = tuple(c.name for c in SERIES)
# A VEE interval when VEE wrote one (actual, estimated, edited, missing, failed), else the reading as
# received with status `received`: the series is whole before and after the VEE run of its day.
SERIES_SQL = """
SELECT coalesce(v.reading_start, r.reading_start) AS reading_start,
       coalesce(v.interval_minutes, r.interval_minutes) AS interval_minutes,
       CASE WHEN v.meter_id IS NOT NULL THEN v.energy_kwh ELSE r.energy_kwh END AS energy_kwh,
       coalesce(v.direction, r.direction) AS direction,
       coalesce(v.status, 'received') AS status,
       coalesce(v.method, 'none') AS method,
       CASE WHEN v.meter_id IS NOT NULL THEN v.original_kwh ELSE r.energy_kwh END AS original_kwh,
       r.record_version,
       r.quality_flags
FROM (SELECT * FROM ops.vee_readings WHERE meter_id = %(meter)s
        AND reading_start >= %(start)s AND reading_start < %(end)s AND reading_start > %(after)s) AS v
FULL JOIN (SELECT * FROM ops.meter_readings WHERE meter_id = %(meter)s
        AND reading_start >= %(start)s AND reading_start < %(end)s AND reading_start > %(after)s) AS r
  ON r.reading_start = v.reading_start
ORDER BY 1
LIMIT %(limit)s
"""
CURSOR_SCOPE = "meter_readings"
EPOCH = datetime.fromisoformat("1900-01-01T00:00:00+00:00")
END_OF_TIME = datetime.fromisoformat("9999-01-01T00:00:00+00:00")


@dataclass(frozen=True)
class SeriesPage:
    rows: list[tuple[Any, ...]]
    next_cursor: str | None


def series_page(
    conn: psycopg.Connection,
    meter_id: str,
    start: datetime | None,
    end: datetime | None,
    cursor: str | None,
    limit: int,
) -> SeriesPage:
    """One page of a meter's series in time order, after `cursor`."""
    scope = cursor_scope(CURSOR_SCOPE, {"meter": meter_id, "from": start, "to": end})
    after = decode_cursor(cursor, scope, 1)[0] if cursor else EPOCH
    if not isinstance(after, datetime):
        raise CursorError("cursor is not one this endpoint issued")
    params = {
        "meter": meter_id,
        "start": start or EPOCH,
        "end": end or END_OF_TIME,
        "after": after,
        "limit": limit + 1,
    }
    rows = conn.execute(SERIES_SQL, params).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    return SeriesPage(rows, encode_cursor(scope, [rows[-1][0]]) if more and rows else None)


def count_series(
    conn: psycopg.Connection, meter_id: str, start: datetime | None, end: datetime | None, up_to: int
) -> int:
    """How many intervals `series_page`'s pages of this meter and range hold, counted up to `up_to`."""
    params = {
        "meter": meter_id,
        "start": start or EPOCH,
        "end": end or END_OF_TIME,
        "after": EPOCH,
        "limit": up_to,
    }
    row = conn.execute(f"SELECT count(*) FROM ({SERIES_SQL}) AS s", params).fetchone()
    return int(row[0]) if row else 0
