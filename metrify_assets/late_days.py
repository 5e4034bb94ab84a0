"""`late_days_sensor`: a batch that lands readings for an old day re-materialises that day, and only it.

Every batch records the local days it touched in `ops.ingest_days` (with an increasing `seq`), and a
reviewer's decision stamps its reading's day again in `ops.retouched_days` from the same sequence
(`storage/days.retouch_day`); the sensor reads both as `ops.touched_days`. A batch that stored nothing
(every record quarantined) has a row there on its arrival day that moves the cursor but requests no
run: it brought nothing new to rebuild. The hourly refresh covers
yesterday and today; this sensor watches for the rest: days older than that which a new batch or a
decision touched. It requests one `refresh_job` run per run of consecutive late days, so a
year-old correction rebuilds one day, not the year; `daily_after_refresh_sensor` (schedules.py) runs
`daily_job` over those days once that run succeeds, not before, as it reads what the refresh builds.

The cursor is the highest `seq` known settled. Sequence numbers are taken when a transaction inserts
and become visible when it commits, so a lower one can appear after a higher one: the cursor stops at
the first gap until the gap is `SETTLE_SECONDS` old (its transaction then either committed, and was
read, or rolled back), and rows past a gap are requested anyway (run keys make that idempotent).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import dagster as dg

from metrify_assets.partitions import TRIGGER_TAG, contiguous_ranges, partition_range_tags
from metrify_assets.resources import PostgresResource

SETTLE_SECONDS = 60
MAX_ROWS_PER_TICK = 10_000
LATE_DAYS_TRIGGER = "late_days"  # the `metrify/trigger` tag of the runs this sensor requests


@dataclass(frozen=True)
class DayRow:
    seq: int
    day: date
    recorded_at: datetime
    # False: a batch that stored nothing (its seq moves the cursor, its day is not rebuilt).
    stored: bool = True


def plan_late_days(
    rows: Sequence[DayRow], cursor: int, today: date, now: datetime, settle_seconds: int = SETTLE_SECONDS
) -> tuple[list[tuple[date, date, int]], int]:
    """Pure: the late day ranges to request (first, last, highest seq) and the new cursor."""
    late = [r for r in rows if r.stored and r.day < today - timedelta(days=1)]
    ranges = []
    for first, last in contiguous_ranges({r.day for r in late}):
        seq = max(r.seq for r in late if first <= r.day <= last)
        ranges.append((first, last, seq))
    return ranges, settled_cursor(rows, cursor, now, settle_seconds)


def settled_cursor(
    rows: Sequence[DayRow], cursor: int, now: datetime, settle_seconds: int = SETTLE_SECONDS
) -> int:
    """Pure: the highest seq of `rows` (those after `cursor`) with no unsettled gap before it."""
    new_cursor = cursor
    for row in sorted(rows, key=lambda r: r.seq):
        gap_settled = (now - row.recorded_at).total_seconds() >= settle_seconds
        if row.seq != new_cursor + 1 and not gap_settled:
            break
        new_cursor = row.seq
    return new_cursor


def late_day_requests(ranges: Sequence[tuple[date, date, int]]) -> list[dg.RunRequest]:
    return [
        dg.RunRequest(
            run_key=f"late-refresh_job-{first}-{last}-{seq}",
            tags={**partition_range_tags(first, last), TRIGGER_TAG: LATE_DAYS_TRIGGER},
        )
        for first, last, seq in ranges
    ]


def build_late_days_sensor(refresh_job: dg.UnresolvedAssetJobDefinition) -> dg.SensorDefinition:
    @dg.sensor(
        name="late_days_sensor",
        job=refresh_job,
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description="Re-runs refresh_job for days older than yesterday that a new batch or a reviewer's decision "
        "touched (ops.touched_days); daily_after_refresh_sensor runs daily_job over them when it succeeds.",
    )
    def late_days_sensor(context: dg.SensorEvaluationContext, postgres: PostgresResource) -> dg.SensorResult:
        with postgres.connect() as conn:
            if context.cursor is None:  # turned on for the first time: late means later than now
                row = conn.execute("SELECT coalesce(max(seq), 0) FROM ops.touched_days").fetchone()
                return dg.SensorResult(cursor=str(row[0] if row else 0))
            cursor = int(context.cursor)
            rows = [
                DayRow(*r)
                for r in conn.execute(
                    "SELECT seq, day, recorded_at, stored FROM ops.touched_days WHERE seq > %s ORDER BY seq LIMIT %s",
                    (cursor, MAX_ROWS_PER_TICK),
                ).fetchall()
            ]
            now = conn.execute("SELECT now()").fetchone()
        now_ts = now[0] if now else datetime.now().astimezone()
        ranges, new_cursor = plan_late_days(rows, cursor, now_ts.date(), now_ts)
        return dg.SensorResult(run_requests=late_day_requests(ranges), cursor=str(new_cursor))

    return late_days_sensor
