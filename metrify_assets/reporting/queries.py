"""What the data-quality report of a range of days reads from PostgreSQL (one query per figure).

A report covers the batches that touched its days (`ops.ingest_days`) and the readings of those days,
so its cost follows the days it covers, not the history held.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pandas as pd
import psycopg
from psycopg import sql

from metrify_assets.contracts import CONTRACTS
from metrify_assets.meters.days import DAY_WINDOW, day_params, readings_of_days_sql
from metrify_assets.quality.scoring import meter_day_completeness
from metrify_assets.storage.frames import read_frame

BATCHES = "SELECT DISTINCT batch_id FROM ops.ingest_days WHERE day BETWEEN %(first)s::date AND %(last)s::date"

# A reviewer's rejection moves the flagged record to quarantine (reason `review_rejected:<note>`) and,
# in the ledger, from flagged to quarantined; its queue item stays, as `rejected`. The report counts
# it as the ledger does: quarantined, not flagged, so each record counts once.
FLAGGED = "status <> 'rejected'"

# Meters by records rejected (quarantine payloads, read with a regex so malformed ones count too;
# a reviewer's rejections included) and flagged (review queue keys, rejected items left out: they are
# those quarantine rows), among the report's batches: total = the meter's distinct offending records.
OFFENDERS_SQL = f"""
WITH batches AS ({BATCHES}), rejected AS (
    SELECT substring(payload FROM '"meter_id"\\s*:\\s*"([^"]+)"') AS meter_id, count(*) AS rejected
    FROM ops.quarantine WHERE source = 'meter_readings' AND batch_id IN (SELECT batch_id FROM batches)
    GROUP BY 1
), flagged AS (
    SELECT split_part(record_key, '|', 1) AS meter_id, count(*) AS flagged
    FROM ops.review_queue WHERE source = 'meter_readings' AND batch_id IN (SELECT batch_id FROM batches)
        AND {FLAGGED}
    GROUP BY 1
)
SELECT meter_id, coalesce(r.rejected, 0) AS rejected, coalesce(f.flagged, 0) AS flagged,
       coalesce(r.rejected, 0) + coalesce(f.flagged, 0) AS total
FROM rejected r FULL JOIN flagged f USING (meter_id)
WHERE meter_id IS NOT NULL
ORDER BY total DESC, meter_id LIMIT %(limit)s
"""


@dataclass(frozen=True)
class ReportData:
    first: date
    last: date
    ledger: pd.DataFrame  # one row per batch that touched the days
    rejects: pd.Series  # quarantine reason strings, one per quarantined record
    flags: pd.Series  # review-queue reason strings, one per flagged record not rejected by review
    meter_days: pd.DataFrame  # meter_id, local_date, received, expected, completeness
    offenders: pd.DataFrame  # meter_id, rejected, flagged, total
    alerts: int
    anomalies: int
    review_status: dict[str, int]


def _in_batches(table: str, columns: str) -> str:
    return f"SELECT {columns} FROM ops.{table} WHERE batch_id IN ({BATCHES})"


def load(conn: psycopg.Connection, first: date, last: date, top_meters: int = 10) -> ReportData:
    params = day_params(first, last)
    ledger = read_frame(
        conn,
        _in_batches(
            "ingest_ledger",
            "batch_id, source, processed_at, records_in, accepted, flagged, quarantined, quality_score",
        )
        + " ORDER BY processed_at",
        params,
    )
    ledger["quality_score"] = ledger["quality_score"].astype("float64")
    readings = read_frame(
        conn,
        readings_of_days_sql(
            "r.meter_id, r.reading_start, r.interval_minutes, coalesce(m.timezone, 'UTC') AS timezone"
        ),
        params,
    )
    anomalies = read_frame(
        conn,
        "SELECT count(*) AS n FROM ops.anomaly_scores a JOIN ops.meter_readings r USING (meter_id, reading_start) "
        f"LEFT JOIN ops.meters m USING (meter_id) WHERE a.is_anomaly AND {DAY_WINDOW}",
        params,
    )
    return ReportData(
        first=first,
        last=last,
        ledger=ledger,
        rejects=read_frame(conn, _in_batches("quarantine", "reasons"), params)["reasons"],
        flags=read_frame(conn, _in_batches("review_queue", "reasons") + f" AND {FLAGGED}", params)["reasons"],
        meter_days=meter_day_completeness(readings),
        offenders=read_frame(conn, OFFENDERS_SQL, {**params, "limit": top_meters}),
        alerts=int(read_frame(conn, _in_batches("quality_alerts", "count(*) AS n"), params)["n"][0]),
        anomalies=int(anomalies["n"][0]),
        review_status=dict(
            conn.execute(
                f"SELECT status, count(*) FROM ops.review_queue WHERE batch_id IN ({BATCHES}) GROUP BY 1",
                params,
            ).fetchall()
        ),
    )


def batch_days(conn: psycopg.Connection, first: date, last: date) -> set[date]:
    """Every day the batches that touched `first`..`last` touched: the days whose reports count them too."""
    rows = conn.execute(
        f"SELECT DISTINCT day FROM ops.ingest_days WHERE batch_id IN ({BATCHES})", day_params(first, last)
    ).fetchall()
    return {day for (day,) in rows}


@dataclass(frozen=True)
class LatestBatch:
    batch_id: str
    rows: pd.DataFrame


def latest_batches(conn: psycopg.Connection, first: date, last: date) -> dict[str, LatestBatch]:
    """Per source, its latest batch among the days' and the rows stored from it, keyed by the suite
    that guards them."""
    batches: dict[str, LatestBatch] = {}
    for source, contract in CONTRACTS.items():
        latest = conn.execute(
            f"SELECT batch_id FROM ops.ingest_ledger WHERE source = %(source)s AND batch_id IN ({BATCHES}) "
            "ORDER BY processed_at DESC, batch_id DESC LIMIT 1",  # the id only orders a tie: one page, always
            {**day_params(first, last), "source": source},
        ).fetchone()
        if latest is None:
            continue
        query = sql.SQL("SELECT {} FROM ops.{} WHERE batch_id = %s").format(
            sql.SQL(", ").join(sql.Identifier(c) for c in contract.columns), sql.Identifier(contract.table)
        )
        rows = read_frame(conn, query.as_string(conn), (latest[0],))
        batches[f"validated_{source}"] = LatestBatch(latest[0], rows)
    return batches
