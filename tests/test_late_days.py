"""Late days: the planning (pure) and the sensor on a real database."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import pandas as pd
import psycopg
import pytest

from metrify_assets.contracts import METER_READINGS
from metrify_assets.ingestion.batch import BatchSpec, process_batch
from metrify_assets.late_days import DayRow, build_late_days_sensor, late_day_requests, plan_late_days
from metrify_assets.partitions import contiguous_ranges
from metrify_assets.resources import PostgresResource
from metrify_assets.resources.lake import Lake
from metrify_assets.schedules import refresh_job

NOW = datetime(2026, 5, 10, 12, 0, tzinfo=UTC)
TODAY = NOW.date()
OLD = NOW - timedelta(minutes=5)


def row(seq: int, day: str, at: datetime = OLD) -> DayRow:
    return DayRow(seq, date.fromisoformat(day), at)


def test_contiguous_days_become_one_range_and_gaps_split_them() -> None:
    days = [date(2026, 1, d) for d in (5, 3, 4, 9)]
    assert contiguous_ranges(days) == [
        (date(2026, 1, 3), date(2026, 1, 5)),
        (date(2026, 1, 9), date(2026, 1, 9)),
    ]


def test_only_days_before_yesterday_are_late() -> None:
    rows = [row(1, "2026-05-10"), row(2, "2026-05-09"), row(3, "2026-05-08"), row(4, "2026-01-02")]
    ranges, cursor = plan_late_days(rows, 0, TODAY, NOW)
    assert ranges == [(date(2026, 1, 2), date(2026, 1, 2), 4), (date(2026, 5, 8), date(2026, 5, 8), 3)]
    assert cursor == 4


def test_the_cursor_waits_at_a_fresh_gap_but_passes_a_settled_one() -> None:
    fresh = NOW - timedelta(seconds=5)
    rows = [row(11, "2026-01-01"), row(13, "2026-01-02", fresh)]
    ranges, cursor = plan_late_days(rows, 10, TODAY, NOW)
    assert cursor == 11  # 12 may still commit
    assert ranges == [(date(2026, 1, 1), date(2026, 1, 2), 13)]  # rows past the gap are requested anyway
    _, cursor = plan_late_days([row(13, "2026-01-02", NOW - timedelta(minutes=2))], 11, TODAY, NOW)
    assert cursor == 13  # 12 rolled back long ago


def test_a_batch_that_stored_nothing_moves_the_cursor_and_requests_nothing() -> None:
    """Every record quarantined: its row (fresh, 0 records) passes the cursor, as its seq was taken,
    but its day is not rebuilt: nothing new was stored on it."""
    fresh = NOW - timedelta(seconds=5)
    rows = [
        row(11, "2026-01-01"),
        DayRow(12, date(2026, 1, 5), fresh, stored=False),
        row(13, "2026-01-09", fresh),
    ]
    ranges, cursor = plan_late_days(rows, 10, TODAY, NOW)
    assert ranges == [(date(2026, 1, 1), date(2026, 1, 1), 11), (date(2026, 1, 9), date(2026, 1, 9), 13)]
    assert cursor == 13


def test_requests_run_refresh_job_over_the_range_with_a_stable_key() -> None:
    """Only refresh_job: daily_job follows when it succeeds (daily_after_refresh_sensor)."""
    requests = late_day_requests([(date(2026, 1, 1), date(2026, 1, 3), 42)])
    assert len(requests) == 1 and requests[0].tags["metrify/trigger"] == "late_days"
    assert requests[0].run_key == "late-refresh_job-2026-01-01-2026-01-03-42"
    assert requests[0].tags["dagster/asset_partition_range_start"] == "2026-01-01"
    assert requests[0].tags["dagster/asset_partition_range_end"] == "2026-01-03"


@pytest.mark.postgres
def test_the_sensor_requests_an_old_day_a_new_batch_touched(
    pg: psycopg.Connection, pg_resource: PostgresResource, tmp_path: Path
) -> None:
    lake = Lake(str(tmp_path / "lake"))
    today = datetime.now(UTC).date()

    def land(batch_id: str, day: date) -> None:
        message = json.dumps(
            {
                "meter_id": "M1",
                "reading_start": f"{day}T12:00:00+00:00",
                "interval_minutes": 15,
                "energy_kwh": 0.2,
            }
        )
        spec = BatchSpec(METER_READINGS, batch_id, "landing", f"{batch_id}.jsonl", today)
        process_batch(spec, [message], [1], lake, pg, pd.Timestamp.now(tz="UTC"))
        pg.commit()

    sensor = build_late_days_sensor(refresh_job)
    land("history", date(2026, 1, 5))
    first = sensor(dg.build_sensor_context(resources={"postgres": pg_resource}))
    assert isinstance(first, dg.SensorResult) and not first.run_requests  # turned on: starts from now

    land("today", today)
    land("late", date(2026, 1, 6))
    tick = sensor(dg.build_sensor_context(cursor=first.cursor, resources={"postgres": pg_resource}))
    assert isinstance(tick, dg.SensorResult)
    assert [r.tags["dagster/asset_partition_range_start"] for r in tick.run_requests] == ["2026-01-06"]
    again = sensor(dg.build_sensor_context(cursor=tick.cursor, resources={"postgres": pg_resource}))
    assert isinstance(again, dg.SensorResult) and not again.run_requests
