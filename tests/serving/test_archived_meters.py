"""Which archived days hold a meter's readings (`serving/archived_meters.py`, migration 0027's
triggers), through the lifecycle's real hot deletion into a local lake, on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import psycopg
import pytest

from metrify_assets.lifecycle import state
from metrify_assets.lifecycle.retention import delete_hot_day
from metrify_assets.lifecycle.tables import TABLES
from metrify_assets.resources.lake import Lake
from metrify_assets.serving.archived_meters import meter_archive

pytestmark = pytest.mark.postgres
DAY = date(2031, 1, 10)


def _reading(conn: psycopg.Connection, meter: str, start: str) -> None:
    conn.execute(
        "INSERT INTO ops.meter_readings (meter_id, reading_start, interval_minutes, energy_kwh, record_version, "
        "batch_id) VALUES (%s, %s, 60, 0.5, 1, 'b-archived-meters')",
        (meter, start),
    )


def _archive(conn: psycopg.Connection, lake: Lake) -> str:
    outcome = delete_hot_day(conn, lake, TABLES["meter_readings"], DAY, [], datetime.now(UTC), "test")
    conn.commit()
    return outcome.action


def test_a_meters_archived_days_follow_the_lifecycle(pg: psycopg.Connection, tmp_path: Path) -> None:
    """A day's hot deletion records its meters (a registered one on its local day); late rows merged
    into the copy and deleted later add theirs and keep the earlier ones; a restore takes the day off,
    and a copy that expired forgets its meters."""
    lake = Lake(str(tmp_path / "lake"))
    pg.execute(
        "INSERT INTO ops.meters (meter_id, segment, region, timezone) "
        "VALUES ('am-tokyo', 'residential', 'r', 'Asia/Tokyo')"
    )
    _reading(pg, "am-utc", "2031-01-10T10:00Z")
    _reading(pg, "am-tokyo", "2031-01-09T20:00Z")  # 05:00 on 01-10 in Tokyo
    pg.commit()
    assert _archive(pg, lake) == "deleted_hot"
    assert [meter_archive(pg, m).days for m in ("am-utc", "am-tokyo", "am-late")] == [[DAY], [DAY], []]
    _reading(pg, "am-late", "2031-01-10T12:00Z")  # after the day left
    pg.commit()
    assert _archive(pg, lake) == "deleted_hot"  # merged into the copy, then deleted
    assert [meter_archive(pg, m).days for m in ("am-utc", "am-tokyo", "am-late")] == [[DAY], [DAY], [DAY]]
    assert meter_archive(pg, "am-never").days == [] and meter_archive(pg, "am-never").unindexed == []
    state.record_restored(pg, "meter_readings", DAY, datetime.now(UTC), date(2031, 2, 1))
    assert meter_archive(pg, "am-utc").days == []
    pg.rollback()
    state.forget(pg, "meter_readings", DAY)
    left = pg.execute("SELECT count(*) FROM ops.archived_meter_days WHERE day = %s", (DAY,)).fetchone()
    assert left == (0,)
    pg.rollback()
