"""The days records fall on, as `ops.ingest_days` records them per batch and `ops.retouched_days`
when a decision touches one again: what `late_days_sensor` and `metrify run` rebuild. Plain SQL, no
frames: the review commands import it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

import psycopg
from psycopg import sql

from metrify_assets.contracts import SourceContract


def local_day(contract: SourceContract, records: sql.Composable) -> tuple[sql.Composable, sql.Composable]:
    """The day a record of `records` (a relation with the contract's columns) falls on, and the
    relation to select it from: a meter reading's local day (UTC for a meter not in the registry, as
    dbt does), a grid or weather sample's UTC day."""
    time = sql.Identifier(contract.time_field)
    if contract.source == "meter_readings":
        day = sql.SQL("(t.{time} AT TIME ZONE coalesce(m.timezone, 'UTC'))::date").format(time=time)
        return day, sql.SQL("{records} t LEFT JOIN ops.meters m USING (meter_id)").format(records=records)
    return sql.SQL("(t.{time} AT TIME ZONE 'UTC')::date").format(time=time), sql.SQL("{} t").format(records)


def retouch_day(
    conn: psycopg.Connection, contract: SourceContract, batch_id: str, key: Mapping[str, str]
) -> None:
    """Stamp the day of one record of `batch_id` (its natural `key`) again, with a new `seq`, in
    `ops.retouched_days`: a reviewer's decision changes what the day's series and marts hold, so
    `late_days_sensor` and `metrify run` (which read `ops.touched_days`) rebuild the day as after a
    late batch. The batch's own stamps in `ops.ingest_days` stay as they were. The day is the one the
    record falls on now, which is the day the marts rebuild put it on: a meter whose time zone changed
    since the ingest has its reading on another day than the batch recorded."""
    record = sql.SQL("(SELECT {})").format(
        sql.SQL(", ").join(
            sql.SQL("{}::{} AS {}").format(
                sql.Placeholder(k),
                sql.SQL("timestamptz" if k == contract.time_field else "text"),
                sql.Identifier(k),
            )
            for k in contract.key
        )
    )
    day, rows = local_day(contract, record)
    conn.execute(
        sql.SQL(
            "INSERT INTO ops.retouched_days (batch_id, source, day) SELECT %(batch_id)s, %(source)s, {day} "
            "FROM {rows}"
        ).format(day=day, rows=rows),
        {**key, "batch_id": batch_id, "source": contract.source},
    )


def retouch_whole_day(conn: psycopg.Connection, source: str, reason: str, day: date) -> None:
    """Stamp a whole `day` of `source` again in `ops.retouched_days` (`reason` stands as its batch):
    a day restored to PostgreSQL from its lake copy has its readings back and nothing derived from them
    (VEE's series, anomaly scores, enrichment left with them), so `late_days_sensor` and `metrify run`
    rebuild it as after a late batch."""
    conn.execute(
        "INSERT INTO ops.retouched_days (batch_id, source, day) VALUES (%s, %s, %s)", (reason, source, day)
    )


def hot_deleted_days(conn: psycopg.Connection, dataset: str, first: date, last: date) -> list[date]:
    """The days of `first`..`last` whose `dataset` rows the lifecycle deleted from the hot tier and no
    restore brought back (`ops.lifecycle_days`, docs/lifecycle.md): a run over them would rebuild
    from what is left, so the day-partitioned assets skip them."""
    rows = conn.execute(
        "SELECT day FROM ops.lifecycle_days WHERE dataset = %s AND day BETWEEN %s AND %s "
        "AND hot_deleted_at IS NOT NULL AND (restored_at IS NULL OR restored_at < hot_deleted_at) ORDER BY day",
        (dataset, first, last),
    ).fetchall()
    return [d for (d,) in rows]
