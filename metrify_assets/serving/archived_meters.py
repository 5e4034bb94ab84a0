"""Which archived days hold a meter's readings: what `/latest` tells a meter without a reading in
PostgreSQL. `ops.lifecycle_days` knows days only, so "days of readings were archived" said nothing of
one meter (a registered meter that never sent a reading read as archived). Migration 0027's triggers
record each meter-day the lifecycle's hot deletion removed (`ops.archived_meter_days`, stamped with the
deleting transaction, which the day's `hot_deleted_xact` matches); asked only on that 404's path."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import psycopg

from metrify_assets.storage.days import HOT_GONE

_DAYS = f"""
SELECT l.day, m.meter_id IS NOT NULL
FROM ops.lifecycle_days l
LEFT JOIN ops.archived_meter_days m ON m.meter_id = %s AND m.day = l.day AND m.xact = l.hot_deleted_xact
WHERE l.dataset = 'meter_readings' AND {HOT_GONE} AND (m.meter_id IS NOT NULL OR l.hot_deleted_xact IS NULL)
ORDER BY l.day
"""


@dataclass(frozen=True)
class MeterArchive:
    """`days`: the archived days whose copies hold the meter's readings. `unindexed`: archived days
    whose hot rows left before migration 0027, whose meters are not recorded (they may hold its)."""

    days: list[date]
    unindexed: list[date]


def meter_archive(conn: psycopg.Connection, meter_id: str) -> MeterArchive:
    """The meter's archived days (not restored since; a day a hold kept its rows hot is not one, as
    they were not deleted), and the days archived before they were recorded per meter. One query over
    the dataset's archived days (one row a day) and the meter's primary-key rows."""
    rows = conn.execute(_DAYS, (meter_id,)).fetchall()
    return MeterArchive([d for d, mine in rows if mine], [d for d, mine in rows if not mine])
