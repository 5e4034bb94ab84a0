"""A late row older than the version the lake copy holds is settled by the copy: no run rewrites the
copy for it, and it leaves the hot tier like the copy's other rows (real PostgreSQL, a local lake and
S3 over HTTP)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from metrify_assets.lifecycle import retention, state
from metrify_assets.lifecycle.policy import Policy
from metrify_assets.lifecycle.tables import TABLES
from metrify_assets.lifecycle.tiers import copy_to_warm, data_key, move_due
from metrify_assets.resources.lake import Lake
from tests.lifecycle.conftest import FIRST_DAY, seed_hot_days

pytestmark = pytest.mark.s3

NOW = datetime(2026, 1, 5, tzinfo=UTC)
TABLE = TABLES["meter_readings"]


def late_reading(conn: psycopg.Connection, meter: str, hour: int, kwh: float, version: int) -> None:
    conn.execute(
        "INSERT INTO ops.meter_readings (meter_id, reading_start, interval_minutes, energy_kwh, record_version, "
        "batch_id) VALUES (%s, %s, 60, %s, %s, 'settled-late')",
        (meter, datetime(2026, 1, 1, hour, tzinfo=UTC), kwh, version),
    )
    conn.commit()


def writes(conn: psycopg.Connection) -> int:
    """Copies of the day written so far (a merge or a copy writes the object and its manifest)."""
    row = conn.execute(
        "SELECT count(*) FROM ops.lifecycle_log WHERE dataset = 'meter_readings' AND day = %s "
        "AND action IN ('copied', 'merged')",
        (FIRST_DAY,),
    ).fetchone()
    assert row is not None
    return int(row[0])


def copy(conn: psycopg.Connection, lake: Lake, hours: int) -> str:
    outcome = copy_to_warm(conn, lake, TABLE, FIRST_DAY, NOW + timedelta(hours=hours))
    conn.commit()
    return outcome.action


def test_a_late_row_older_than_the_copy_is_settled_and_never_rewrites_it(
    pg: psycopg.Connection, lake: Lake
) -> None:
    """A replayed reading (version 0) of a key the copy holds at version 1 used to be merged, found
    not in the copy as it is, and merged again by every run: the copy rewritten each time, the row hot
    for good. Now the copy settles it unwritten; a late batch with a newer row too is merged once."""
    seed_hot_days(pg, days=1)
    assert copy(pg, lake, 0) == "copied"
    retention.apply(pg, lake, Policy(), FIRST_DAY + timedelta(days=30), NOW)
    assert len(TABLE.read_days(pg, FIRST_DAY, FIRST_DAY)) == 0
    key = data_key("meter_readings", FIRST_DAY)
    first = state.get(pg, "meter_readings", FIRST_DAY)
    before = lake.head(key)
    assert first is not None and before is not None and writes(pg) == 1

    # Only an older version: the copy already holds the newer one, nothing is written.
    late_reading(pg, "m-001", 6, 7.7, 0)
    assert copy(pg, lake, 1) == "unchanged"
    assert copy(pg, lake, 2) == "unchanged"
    assert writes(pg) == 1 and lake.head(key) == before
    settled = state.get(pg, "meter_readings", FIRST_DAY)
    assert settled is not None and (settled.verified_at, settled.sha256) == (first.verified_at, first.sha256)

    # An older and a newer late row: one merge, then the runs after it write nothing.
    late_reading(pg, "m-002", 7, 8.8, 5)
    assert copy(pg, lake, 3) == "merged"
    merged = lake.head(key)
    assert [copy(pg, lake, h) for h in (4, 5)] == ["unchanged", "unchanged"]
    assert writes(pg) == 2 and lake.head(key) == merged

    # Both rows are in the copy as far as they matter: archived with it, they leave the hot tier unread.
    today = FIRST_DAY + timedelta(days=400)
    for tier in ("cold", "archive"):
        move_due(pg, lake, Policy(), today, FIRST_DAY, FIRST_DAY, tier, NOW)
    report = retention.apply(pg, lake, Policy(), today, NOW)
    days = [
        (o.action, o.rows) for o in report.outcomes if o.dataset == "meter_readings" and o.day == FIRST_DAY
    ]
    assert days == [("deleted_hot", 2)]
    assert len(TABLE.read_days(pg, FIRST_DAY, FIRST_DAY)) == 0
    archived = state.get(pg, "meter_readings", FIRST_DAY)
    assert archived is not None and (archived.storage_class, archived.row_count) == ("GLACIER", 48)
    assert writes(pg) == 2
