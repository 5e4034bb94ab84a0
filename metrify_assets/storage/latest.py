"""The newest stored reading of each meter: what the cache's latest-reading entry holds, and what the
data API reads from PostgreSQL when the cache misses or Redis is down (docs/api.md#cache)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg

LATEST_COLUMNS = (
    "meter_id",
    "reading_start",
    "interval_minutes",
    "energy_kwh",
    "direction",
    "register_kwh",
    "voltage_v",
    "power_factor",
    "status_flags",
    "record_version",
    "ingested_at",
    "quality_flags",
)
# One primary-key probe per meter (newest `reading_start` first), however long its history.
_LATEST = f"""
SELECT {", ".join(f"r.{c}" for c in LATEST_COLUMNS)} FROM unnest(%s::text[]) AS m(meter_id)
CROSS JOIN LATERAL (
    SELECT * FROM ops.meter_readings r WHERE r.meter_id = m.meter_id ORDER BY r.reading_start DESC LIMIT 1
) r
"""


def latest_readings(conn: psycopg.Connection, meter_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """meter_id -> its stored reading with the greatest `reading_start` (`LATEST_COLUMNS`, timestamps
    in UTC); meters without readings are absent."""
    if not meter_ids:
        return {}
    rows = conn.execute(_LATEST, (list(meter_ids),)).fetchall()
    return {
        row[0]: {
            column: value.astimezone(UTC) if isinstance(value, datetime) else value
            for column, value in zip(LATEST_COLUMNS, row, strict=True)
        }
        for row in rows
    }
