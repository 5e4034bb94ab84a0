"""A late batch that brings a meter's readings from before its first stored one: VEE expected the
meter from its old first reading, so the meter's old first day is re-run with the days the batch
touched (`storage.days.first_days_moving`), planned as `late_days_sensor` plans any late day."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from metrify_assets.late_days import build_late_days_sensor
from metrify_assets.resources import PostgresResource
from metrify_assets.resources.lake import Lake
from metrify_assets.schedules import refresh_job
from metrify_assets.storage import rebuilt
from tests.meters.vee.test_store import _vee_backfill, day_messages, ingest

pytestmark = pytest.mark.postgres
DAY = date(2026, 5, 12)  # the meters' first day (unregistered: UTC days of 96 quarter-hours)
MORNING = set(range(52))  # 00:00-12:45: before the meters' first readings


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(str(tmp_path / "lake"))


def first_days(conn: psycopg.Connection, meter: str) -> list[tuple[object, ...]]:
    return conn.execute(
        "SELECT local_date, expected_intervals, actual_intervals, missing_intervals + estimated_intervals, "
        "billing_ready FROM ops.vee_days WHERE meter_id = %s ORDER BY local_date",
        (meter,),
    ).fetchall()


def late_batch(
    pg: psycopg.Connection, pg_resource: PostgresResource, lake: Lake, batch_id: str, messages: list[str]
) -> list[tuple[date, date]]:
    """Ingest `messages` as a late batch, then re-run VEE over each range `late_days_sensor` requests
    for it (as its `refresh_job` runs would) -> those ranges."""
    sensor = build_late_days_sensor(refresh_job)
    context = dg.build_sensor_context(resources={"postgres": pg_resource})
    turned_on = sensor(context)
    assert isinstance(turned_on, dg.SensorResult)
    ingest(pg, lake, batch_id, messages)
    tick = sensor(dg.build_sensor_context(cursor=turned_on.cursor, resources={"postgres": pg_resource}))
    assert isinstance(tick, dg.SensorResult)
    ranges = [
        (
            date.fromisoformat(r.tags["dagster/asset_partition_range_start"]),
            date.fromisoformat(r.tags["dagster/asset_partition_range_end"]),
        )
        for r in tick.run_requests
    ]
    for first, last in ranges:
        _vee_backfill(pg_resource, first, last)
    return ranges


def test_a_late_morning_of_the_first_day_makes_the_day_whole(
    pg: psycopg.Connection, pg_resource: PostgresResource, lake: Lake
) -> None:
    """Readings from 13:00, VEE run: 44 expected. The morning's 52 arrive a day later: the batch touches
    the day itself, which is re-run from the meter's new first reading, 96 expected and all read."""
    ingest(
        pg,
        lake,
        "fdm-1",
        [*day_messages("FDM-1", DAY, skip=MORNING), *day_messages("FDM-1", DAY + timedelta(1))],
    )
    _vee_backfill(pg_resource, DAY, DAY + timedelta(days=1))
    assert first_days(pg, "FDM-1")[0] == (DAY, 44, 44, 0, True)

    morning = [m for i, m in enumerate(day_messages("FDM-1", DAY)) if i in MORNING]
    assert late_batch(pg, pg_resource, lake, "fdm-2", morning) == [(DAY, DAY)]
    assert first_days(pg, "FDM-1") == [(DAY, 96, 96, 0, True), (DAY + timedelta(days=1), 96, 96, 0, True)]


def test_a_late_earlier_day_re_runs_the_meters_old_first_day(
    pg: psycopg.Connection, pg_resource: PostgresResource, lake: Lake
) -> None:
    """Readings from 13:00, VEE run: 44 expected. A whole earlier day arrives late: the meter reported
    before its old first day, so that day (which the batch does not touch) is re-run too: 96 expected,
    its morning without readings. Only a meter whose first reading moved stamps its old first day: a
    later batch of the same meter, or of another meter beside it, does not."""
    before, after = DAY - timedelta(days=1), DAY + timedelta(days=1)
    ingest(
        pg,
        lake,
        "fde-1",
        [
            *day_messages("FDE-1", DAY, skip=MORNING),
            *day_messages("FDE-1", after, seed=1),
            *day_messages("FDE-2", DAY, skip=MORNING, seed=2),
        ],
    )
    _vee_backfill(pg_resource, DAY, after)
    assert first_days(pg, "FDE-1") == [(DAY, 44, 44, 0, True), (after, 96, 96, 0, True)]

    ranges = late_batch(pg, pg_resource, lake, "fde-2", day_messages("FDE-1", before, seed=3))
    assert ranges == [(before, DAY)]
    assert pg.execute("SELECT batch_id, day FROM ops.retouched_days").fetchall() == [("fde-2", DAY)]
    assert first_days(pg, "FDE-1") == [
        (before, 96, 96, 0, True),
        (DAY, 96, 44, 52, False),  # the morning: VEE's now (missing or estimated), not left out
        (after, 96, 96, 0, True),
    ]
    assert first_days(pg, "FDE-2") == [(DAY, 44, 44, 0, True)]  # its first reading did not move
    # The marts follow as for any touched day: its rebuild is owed by every refreshed asset until a
    # refresh_job run over it (the one late_days_sensor requested) has rebuilt it; VEE has.
    owed = rebuilt.owed(pg, [DAY])[DAY]
    assert (owed.batch_id, owed.again) == ("fde-2", True)
    assert "vee_meter_readings" not in owed.assets and "metrify_dbt" in owed.assets

    # Later readings of a meter, and a meter's first readings, move no first day.
    ingest(
        pg, lake, "fde-3", [*day_messages("FDE-1", after + timedelta(days=1)), *day_messages("FDE-3", before)]
    )
    assert pg.execute("SELECT count(*) FROM ops.retouched_days WHERE batch_id = 'fde-3'").fetchone() == (0,)
