"""The days records fall on, as `ops.ingest_days` records them per batch and `ops.retouched_days`
when a decision touches one again: what `late_days_sensor` and `metrify run` rebuild. Plain SQL, no
frames: the review commands import it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime

import psycopg
from psycopg import sql

from metrify_assets.contracts import SourceContract

# A meter's time zone, for a row `m` of `ops.meters` joined on the meter (none: not in the registry,
# so UTC, as dbt's marts and VEE take it).
METER_TIMEZONE = sql.SQL("coalesce(m.timezone, 'UTC')")


def local_day(contract: SourceContract, records: sql.Composable) -> tuple[sql.Composable, sql.Composable]:
    """The day a record of `records` (a relation with the contract's columns) falls on, and the
    relation to select it from: a meter reading's local day (`METER_TIMEZONE`), a grid or weather
    sample's UTC day."""
    time = sql.Identifier(contract.time_field)
    if contract.source == "meter_readings":
        day = sql.SQL("(t.{time} AT TIME ZONE {tz})::date").format(time=time, tz=METER_TIMEZONE)
        return day, sql.SQL("{records} t LEFT JOIN ops.meters m USING (meter_id)").format(records=records)
    return sql.SQL("(t.{time} AT TIME ZONE 'UTC')::date").format(time=time), sql.SQL("{} t").format(records)


def meter_day_starts(
    conn: psycopg.Connection, meter_id: str, first: date | None, end: date | None
) -> tuple[datetime | None, datetime | None]:
    """The instants the meter's local days `first` and `end` begin (midnight in `METER_TIMEZONE`,
    the zone `local_day` names its readings' days in; None stays None): the span `first`..`end`
    (end exclusive) of its local days, 23, 24 or 25 hours a day. One query, on the registry's key.
    Not before 0001-01-01 UTC, which Python's datetime cannot go below (that day begins in year 0
    east of Greenwich): no reading is stored before it."""
    start = sql.SQL(
        "CASE WHEN {day}::date IS NOT NULL THEN greatest({day}::timestamp AT TIME ZONE {tz}, "
        "'0001-01-01T00:00:00Z') END"
    )
    query = sql.SQL(
        "SELECT {first}, {end} FROM (SELECT %(meter)s::text AS meter_id) AS t LEFT JOIN ops.meters m USING (meter_id)"
    ).format(
        first=start.format(day=sql.Placeholder("first"), tz=METER_TIMEZONE),
        end=start.format(day=sql.Placeholder("end"), tz=METER_TIMEZONE),
    )
    row = conn.execute(query, {"first": first, "end": end, "meter": meter_id}).fetchone()
    assert row is not None  # one row: the meter, registered or not
    return row[0], row[1]


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


def first_days_moving(
    conn: psycopg.Connection, meter_ids: Sequence[str], earliest: Sequence[datetime]
) -> list[date]:
    """Before a batch stores meter readings (`earliest`: each meter's earliest reading in it), the
    local days of the stored first readings of those meters it brings earlier readings of: VEE opens a
    meter's first day at its first reading (`meters.vee.store.reporting_from`), so the meter's old
    first day is expected otherwise once the batch is stored (`retouch_first_days`). A meter with no
    stored reading yet has no first day to move. One probe of the primary key per meter of the batch."""
    query = sql.SQL(
        "SELECT DISTINCT (f.first AT TIME ZONE {tz})::date "
        "FROM unnest(%s::text[], %s::timestamptz[]) AS b(meter_id, earliest) "
        "CROSS JOIN LATERAL (SELECT min(r.reading_start) AS first FROM ops.meter_readings r "
        "WHERE r.meter_id = b.meter_id) AS f LEFT JOIN ops.meters m USING (meter_id) "
        "WHERE f.first > b.earliest ORDER BY 1"
    ).format(tz=METER_TIMEZONE)
    rows = conn.execute(query, (list(meter_ids), list(earliest))).fetchall()
    return [d for (d,) in rows]


def retouch_first_days(conn: psycopg.Connection, batch_id: str, days: Sequence[date]) -> None:
    """Stamp `days` (`first_days_moving`'s, taken before `batch_id` stored its readings) again in
    `ops.retouched_days`, but for those the batch stamped itself (it is rebuilt for them already):
    `late_days_sensor` and `metrify run` re-run a meter's old first day, whose expected intervals
    changed, with the days the batch touched."""
    if days:
        conn.execute(
            "INSERT INTO ops.retouched_days (batch_id, source, day) SELECT %(batch_id)s, 'meter_readings', d "
            "FROM unnest(%(days)s::date[]) AS d WHERE NOT EXISTS (SELECT 1 FROM ops.ingest_days i "
            "WHERE i.batch_id = %(batch_id)s AND i.day = d)",
            {"batch_id": batch_id, "days": list(days)},
        )


# A row of `ops.lifecycle_days` whose day's hot rows the lifecycle deleted and no restore brought back.
HOT_GONE = "hot_deleted_at IS NOT NULL AND (restored_at IS NULL OR restored_at < hot_deleted_at)"


def hot_deleted_days(conn: psycopg.Connection, dataset: str, first: date, last: date) -> list[date]:
    """The days of `first`..`last` whose `dataset` rows the lifecycle deleted from the hot tier and no
    restore brought back (`ops.lifecycle_days`, docs/lifecycle.md): a run over them would rebuild
    from what is left, so the day-partitioned assets skip them."""
    rows = conn.execute(
        f"SELECT day FROM ops.lifecycle_days WHERE dataset = %s AND day BETWEEN %s AND %s AND {HOT_GONE} "
        "ORDER BY day",
        (dataset, first, last),
    ).fetchall()
    return [d for (d,) in rows]


def newest_archived_day(conn: psycopg.Connection, dataset: str) -> date | None:
    """The newest day of `dataset` whose rows left PostgreSQL and were not restored (`HOT_GONE`), or
    None: a reading after it cannot sit beside an archived day."""
    row = conn.execute(
        f"SELECT max(day) FROM ops.lifecycle_days WHERE dataset = %s AND {HOT_GONE}", (dataset,)
    )
    return row.fetchone()[0]  # type: ignore[index]


def archived_days(
    conn: psycopg.Connection,
    contract: SourceContract,
    start: datetime | None,
    end: datetime | None,
    meter_id: str | None = None,
) -> list[date]:
    """The days of the span `start`..`end` (end exclusive; None: unbounded that side) whose
    `contract.source` rows left PostgreSQL for the lake and were not restored (`hot_deleted_days`),
    days as `local_day` names them: a meter's local day for `meter_id`'s readings, the UTC day for
    grid and weather samples. A day whose rows of `meter_id` a meter-scoped legal hold kept hot when
    the others left (the hold stood at the hot deletion) is not one of them. One query, on the
    primary key of `ops.lifecycle_days`: what the data API asks on every request that serves hot rows."""
    if start is not None and end is not None and start >= end:
        return []
    bounds = sql.SQL(
        "(SELECT b.bound, b.at AS {time}, %(meter)s::text AS meter_id FROM (VALUES ('first', %(start)s::timestamptz), "
        "('last', %(end)s::timestamptz - interval '1 microsecond')) AS b(bound, at))"
    ).format(time=sql.Identifier(contract.time_field))
    day, rows = local_day(contract, bounds)
    # A hold on the dataset or on 'all' (lifecycle/holds.py ALL) naming the meter, standing when the
    # day's hot rows were deleted, kept that meter's rows hot.
    kept = sql.SQL(
        "AND NOT EXISTS (SELECT 1 FROM ops.legal_holds h WHERE h.meter_id = %(meter)s "
        "AND h.dataset IN (l.dataset, 'all') AND l.day BETWEEN h.first_day AND h.last_day "
        "AND h.created_at <= l.hot_deleted_at AND (h.released_at IS NULL OR h.released_at > l.hot_deleted_at))"
    )
    query = sql.SQL(
        "WITH span AS (SELECT max({day}) FILTER (WHERE t.bound = 'first') AS first, "
        "max({day}) FILTER (WHERE t.bound = 'last') AS last FROM {rows}) "
        "SELECT l.day FROM ops.lifecycle_days l, span WHERE l.dataset = %(dataset)s "
        "AND l.day >= coalesce(span.first, '-infinity') AND l.day <= coalesce(span.last, 'infinity') "
        "AND {hot_gone} {kept} ORDER BY l.day"
    ).format(
        day=day,
        rows=rows,
        hot_gone=sql.SQL(HOT_GONE),  # its columns are lifecycle_days' only
        kept=kept if meter_id is not None else sql.SQL(""),
    )
    params = {"meter": meter_id, "start": start, "end": end, "dataset": contract.source}
    return [d for (d,) in conn.execute(query, params).fetchall()]


@dataclass(frozen=True)
class LakeDays:
    """Where a tiered dataset's days are in the lake (`ops.lifecycle_days`): days per lake tier, and
    how many of them left PostgreSQL (not restored), the newest of those."""

    dataset: str
    tiers: dict[str, int]  # warm, cold, archive -> days with a copy there
    hot_deleted: int
    newest_hot_deleted: date | None


def lake_days(conn: psycopg.Connection) -> dict[str, LakeDays]:
    """Each tiered dataset with a lake copy -> its `LakeDays`: one aggregate over `ops.lifecycle_days`
    (a row per dataset and day, so years of history are a few thousand rows)."""
    rows = conn.execute(
        f"SELECT dataset, tier, count(*), count(*) FILTER (WHERE {HOT_GONE}), max(day) FILTER (WHERE {HOT_GONE}) "
        "FROM ops.lifecycle_days GROUP BY dataset, tier ORDER BY dataset, tier"
    ).fetchall()
    found: dict[str, LakeDays] = {}
    for dataset, tier, days, gone, newest in rows:
        before = found.get(dataset, LakeDays(dataset, {}, 0, None))
        newest_gone = max((d for d in (before.newest_hot_deleted, newest) if d is not None), default=None)
        found[dataset] = LakeDays(
            dataset, {**before.tiers, tier: days}, before.hot_deleted + gone, newest_gone
        )
    return found


def holds_standing(conn: psycopg.Connection) -> int:
    """Legal holds not released (`ops.legal_holds`, docs/lifecycle.md#legal-holds)."""
    row = conn.execute("SELECT count(*) FROM ops.legal_holds WHERE released_at IS NULL").fetchone()
    return int(row[0]) if row else 0
