"""What the data-quality report reads from PostgreSQL, as DataFrames (one query per figure)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import psycopg
from psycopg import sql

from metrify_assets.contracts import CONTRACTS
from metrify_assets.quality.scoring import ScoringConfig
from metrify_assets.storage.frames import read_frame

# Completeness per meter and local day: distinct intervals received / intervals in that local day
# (92 or 100 quarter-hours on DST days), as in quality.scoring.meter_day_quality.
METER_DAY_SQL = """
WITH days AS (
    SELECT meter_id, (reading_start AT TIME ZONE %(tz)s)::date AS local_date,
           count(DISTINCT reading_start) AS received, min(interval_minutes) AS interval_minutes
    FROM ops.meter_readings GROUP BY 1, 2
)
SELECT meter_id, local_date, received,
       extract(epoch FROM ((local_date + 1)::timestamp AT TIME ZONE %(tz)s)
                          - (local_date::timestamp AT TIME ZONE %(tz)s)) / 60 / interval_minutes AS expected
FROM days
"""

# Meters by records rejected (quarantine payloads, read with a regex so malformed ones count too)
# and flagged (review queue keys).
OFFENDERS_SQL = """
WITH rejected AS (
    SELECT substring(payload FROM '"meter_id"\\s*:\\s*"([^"]+)"') AS meter_id, count(*) AS rejected
    FROM ops.quarantine WHERE source = 'meter_readings' GROUP BY 1
), flagged AS (
    SELECT split_part(record_key, '|', 1) AS meter_id, count(*) AS flagged
    FROM ops.review_queue WHERE source = 'meter_readings' GROUP BY 1
)
SELECT meter_id, coalesce(r.rejected, 0) AS rejected, coalesce(f.flagged, 0) AS flagged,
       coalesce(r.rejected, 0) + coalesce(f.flagged, 0) AS total
FROM rejected r FULL JOIN flagged f USING (meter_id)
WHERE meter_id IS NOT NULL
ORDER BY total DESC, meter_id LIMIT %(limit)s
"""


@dataclass(frozen=True)
class ReportData:
    ledger: pd.DataFrame  # one row per batch
    rejects: pd.Series  # quarantine reason strings
    flags: pd.Series  # review-queue reason strings
    meter_days: pd.DataFrame  # meter_id, local_date, received, expected, completeness
    offenders: pd.DataFrame  # meter_id, rejected, flagged, total
    alerts: int
    anomalies: int
    review_status: dict[str, int]


def load(conn: psycopg.Connection, top_meters: int = 10) -> ReportData:
    ledger = read_frame(
        conn,
        "SELECT batch_id, source, processed_at, records_in, accepted, flagged, quarantined, quality_score "
        "FROM ops.ingest_ledger ORDER BY processed_at",
    )
    ledger["quality_score"] = ledger["quality_score"].astype("float64")
    meter_days = read_frame(conn, METER_DAY_SQL, {"tz": ScoringConfig().timezone})
    meter_days["completeness"] = (
        meter_days["received"].astype("float64") / meter_days["expected"].astype("float64")
    ).clip(upper=1.0)
    return ReportData(
        ledger=ledger,
        rejects=read_frame(conn, "SELECT reasons FROM ops.quarantine")["reasons"],
        flags=read_frame(conn, "SELECT reasons FROM ops.review_queue")["reasons"],
        meter_days=meter_days,
        offenders=read_frame(conn, OFFENDERS_SQL, {"limit": top_meters}),
        alerts=int(read_frame(conn, "SELECT count(*) AS n FROM ops.quality_alerts")["n"][0]),
        anomalies=int(
            read_frame(conn, "SELECT count(*) AS n FROM ops.anomaly_scores WHERE is_anomaly")["n"][0]
        ),
        review_status=dict(
            conn.execute("SELECT status, count(*) FROM ops.review_queue GROUP BY 1").fetchall()
        ),
    )


def latest_batches(conn: psycopg.Connection) -> dict[str, pd.DataFrame]:
    """Per source, the stored rows of its latest batch, keyed by the suite that guards them."""
    frames: dict[str, pd.DataFrame] = {}
    for source, contract in CONTRACTS.items():
        latest = conn.execute(
            "SELECT batch_id FROM ops.ingest_ledger WHERE source = %s ORDER BY processed_at DESC LIMIT 1",
            (source,),
        ).fetchone()
        if latest is None:
            continue
        query = sql.SQL("SELECT {} FROM ops.{} WHERE batch_id = %s").format(
            sql.SQL(", ").join(sql.Identifier(c) for c in contract.columns), sql.Identifier(contract.table)
        )
        frames[f"validated_{source}"] = read_frame(conn, query.as_string(conn), (latest[0],))
    return frames
