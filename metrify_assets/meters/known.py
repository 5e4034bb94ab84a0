"""Whether the store knows a meter: one answer for the API's 404 and the CLI's checks of a meter id."""

from __future__ import annotations

import psycopg


def meter_known(conn: psycopg.Connection, meter_id: str) -> bool:
    """Whether the store has any trace of the meter: in the registry, a reading, or a VEE interval
    (three primary-key probes)."""
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM ops.meters WHERE meter_id = %(m)s) "
        "OR EXISTS (SELECT 1 FROM ops.meter_readings WHERE meter_id = %(m)s) "
        "OR EXISTS (SELECT 1 FROM ops.vee_readings WHERE meter_id = %(m)s)",
        {"m": meter_id},
    ).fetchone()
    return bool(row and row[0])
