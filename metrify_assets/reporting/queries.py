"""What the data-quality reports of a run read from PostgreSQL: each day and each batch once.

A report covers the batches that touched its days (`ops.ingest_days`) and the readings of those days,
so its cost follows the days it covers, not the history held. One run renders several pages (its
own, latest.html, the dated pages of its days and of its batches' days) whose days overlap: `read`
reads the union of their days once (the batches' figures in one query each, the readings a week of
days at a time) and `Loaded.report` cuts each page's figures from it, as a query of the page's days
alone would give them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pandas as pd
import psycopg
from psycopg import sql

from metrify_assets.contracts import CONTRACTS
from metrify_assets.meters.days import DAY_WINDOW, LOCAL_TS, day_params, days_between, readings_of_days_sql
from metrify_assets.partitions import contiguous_ranges
from metrify_assets.quality.scoring import meter_day_completeness
from metrify_assets.storage.frames import read_frame

BATCHES = "SELECT DISTINCT batch_id FROM ops.ingest_days WHERE day = ANY(%(days)s::date[])"

# A reviewer's rejection moves the flagged record to quarantine (reason `review_rejected:<note>`) and,
# in the ledger, from flagged to quarantined; its queue item stays, as `rejected`. The report counts
# it as the ledger does: quarantined, not flagged, so each record counts once.
FLAGGED = "status <> 'rejected'"

# Per batch, meters by records rejected (quarantine payloads, read with a regex so malformed ones
# count too; a reviewer's rejections included) and flagged (review queue keys, rejected items left
# out: they are those quarantine rows): a page sums its batches', total = the meter's distinct
# offending records.
OFFENDERS_SQL = f"""
WITH batches AS ({BATCHES}), rejected AS (
    SELECT batch_id, substring(payload FROM '"meter_id"\\s*:\\s*"([^"]+)"') AS meter_id, count(*) AS rejected
    FROM ops.quarantine WHERE source = 'meter_readings' AND batch_id IN (SELECT batch_id FROM batches)
    GROUP BY 1, 2
), flagged AS (
    SELECT batch_id, split_part(record_key, '|', 1) AS meter_id, count(*) AS flagged
    FROM ops.review_queue WHERE source = 'meter_readings' AND batch_id IN (SELECT batch_id FROM batches)
        AND {FLAGGED}
    GROUP BY 1, 2
)
SELECT batch_id, meter_id, coalesce(r.rejected, 0) AS rejected, coalesce(f.flagged, 0) AS flagged
FROM rejected r FULL JOIN flagged f USING (batch_id, meter_id)
WHERE meter_id IS NOT NULL
"""

READING_DAYS = 7  # the days of readings `read` holds at once

# The minutes VEE expects of each meter-day (from a meter's first reading's interval on its first day):
# a page's completeness divides by them, as fct_consumption_daily's does, not by the whole local day.
VEE_DAYS_SQL = (
    "SELECT meter_id, local_date, expected_intervals * interval_minutes AS expected_minutes "
    "FROM ops.vee_days WHERE local_date BETWEEN %s AND %s"
)

ANOMALIES_SQL = (
    f"SELECT {LOCAL_TS}::date AS local_date, count(*) AS n FROM ops.anomaly_scores a "
    "JOIN ops.meter_readings r USING (meter_id, reading_start) LEFT JOIN ops.meters m USING (meter_id) "
    f"WHERE a.is_anomaly AND {DAY_WINDOW} GROUP BY 1"
)


@dataclass(frozen=True)
class ReportData:
    first: date
    last: date
    ledger: pd.DataFrame  # one row per batch that touched the days
    rejects: pd.Series  # quarantine reason strings, one per quarantined record
    flags: pd.DataFrame  # reasons, status: one row per flagged record not rejected by review
    meter_days: pd.DataFrame  # meter_id, local_date, received, expected, completeness
    offenders: pd.DataFrame  # meter_id, rejected, flagged, total
    alerts: int
    anomalies: int
    review_status: dict[str, int]


@dataclass(frozen=True)
class Loaded:
    """Everything the report pages of a set of days count, read once: per batch that touched one of
    the days (its days, ledger row, quarantine and flag reasons, offending meters, alerts, review items
    by status) and per local day (completeness per meter, anomalies)."""

    ranges: list[tuple[date, date]]  # the days read, as runs of consecutive days
    batch_days: pd.DataFrame  # batch_id, day: every day each batch touched
    ledger: pd.DataFrame  # one row per batch, in processing order
    rejects: pd.DataFrame  # batch_id, reasons: one row per quarantined record
    flags: pd.DataFrame  # batch_id, reasons, status: one row per flagged record not rejected by review
    offenders: pd.DataFrame  # batch_id, meter_id, rejected, flagged
    alerts: pd.DataFrame  # batch_id, n
    review: pd.DataFrame  # batch_id, status, n
    meter_days: pd.DataFrame  # meter_id, local_date, received, expected, completeness
    anomalies: pd.DataFrame  # local_date, n

    def _batches(self, first: date, last: date) -> pd.Index:
        days = self.batch_days
        return pd.Index(days.loc[(days["day"] >= first) & (days["day"] <= last), "batch_id"].unique())

    def report(self, first: date, last: date, top_meters: int = 10) -> ReportData:
        """The figures of the report of `first`..`last` (days this holds), as a query of them gives."""
        if not any(a <= first and last <= b for a, b in self.ranges):
            raise ValueError(f"the days {first} .. {last} were not read, only {self.ranges}")
        batches = self._batches(first, last)

        def of(frame: pd.DataFrame) -> pd.DataFrame:
            return frame[frame["batch_id"].isin(batches)].reset_index(drop=True)

        offenders = of(self.offenders).groupby("meter_id", as_index=False)[["rejected", "flagged"]].sum()
        offenders["total"] = offenders["rejected"] + offenders["flagged"]
        offenders = offenders.sort_values(["total", "meter_id"], ascending=[False, True], kind="stable")
        in_days = self.meter_days["local_date"].between(first, last)
        review = of(self.review).groupby("status")["n"].sum()
        return ReportData(
            first=first,
            last=last,
            ledger=of(self.ledger),
            rejects=of(self.rejects)["reasons"],
            flags=of(self.flags)[["reasons", "status"]],
            meter_days=self.meter_days[in_days].reset_index(drop=True),
            offenders=offenders.head(top_meters).reset_index(drop=True),
            alerts=int(of(self.alerts)["n"].sum()),
            anomalies=int(self.anomalies.loc[self.anomalies["local_date"].between(first, last), "n"].sum()),
            review_status={str(status): int(n) for status, n in review.items()},
        )

    def latest_batches(self, first: date, last: date) -> dict[str, str]:
        """Per source among those of `first`..`last`'s batches, its latest batch (processed last; the
        id only orders a tie, so a page always names one), keyed by the suite that guards its rows."""
        ledger = self.ledger[self.ledger["batch_id"].isin(self._batches(first, last))]
        ordered = ledger.sort_values(["processed_at", "batch_id"], ascending=False, kind="stable")
        latest = ordered.drop_duplicates("source").set_index("source")["batch_id"]
        return {f"validated_{source}": str(latest[source]) for source in CONTRACTS if source in latest}


def _dates(column: pd.Series) -> pd.Series:
    return pd.to_datetime(column).dt.date


def read(conn: psycopg.Connection, days: Iterable[date]) -> Loaded:
    """Read what the reports of `days` count, each day and each batch once."""
    runs = contiguous_ranges(set(days))
    params: dict[str, Any] = {
        "days": [day.isoformat() for first, last in runs for day in days_between(first, last)]
    }

    def in_batches(table: str, columns: str, where: str = "") -> pd.DataFrame:
        return read_frame(
            conn, f"SELECT {columns} FROM ops.{table} WHERE batch_id IN ({BATCHES}){where}", params
        )

    batch_days = read_frame(
        conn, f"SELECT batch_id, day FROM ops.ingest_days WHERE batch_id IN ({BATCHES})", params
    )
    batch_days["day"] = _dates(batch_days["day"])
    ledger = in_batches(
        "ingest_ledger",
        "batch_id, source, processed_at, records_in, accepted, flagged, quarantined, quality_score",
        " ORDER BY processed_at",
    )
    ledger["quality_score"] = ledger["quality_score"].astype("float64")
    meter_days, anomalies = [], []
    for first, last in runs:
        # At most READING_DAYS days of readings in memory at once (a month of a large fleet would not
        # fit); each local day's completeness needs that day's readings only.
        for start in days_between(first, last)[::READING_DAYS]:
            end = min(last, start + timedelta(days=READING_DAYS - 1))
            readings = read_frame(
                conn,
                readings_of_days_sql(
                    "r.meter_id, r.reading_start, r.interval_minutes, coalesce(m.timezone, 'UTC') AS timezone"
                ),
                day_params(start, end),
            )
            vee_days = read_frame(conn, VEE_DAYS_SQL, (start, end))
            meter_days.append(meter_day_completeness(readings, vee_days))
            anomalies.append(read_frame(conn, ANOMALIES_SQL, day_params(start, end)))
    anomalies_frame = (
        pd.concat(anomalies, ignore_index=True) if anomalies else pd.DataFrame(columns=["local_date", "n"])
    )
    anomalies_frame["local_date"] = _dates(anomalies_frame["local_date"])
    return Loaded(
        ranges=runs,
        batch_days=batch_days,
        ledger=ledger,
        rejects=in_batches("quarantine", "batch_id, reasons"),
        flags=in_batches("review_queue", "batch_id, reasons, status", f" AND {FLAGGED}"),
        offenders=read_frame(conn, OFFENDERS_SQL, params),
        alerts=in_batches("quality_alerts", "batch_id, count(*) AS n", " GROUP BY 1"),
        review=in_batches("review_queue", "batch_id, status, count(*) AS n", " GROUP BY 1, 2"),
        meter_days=pd.concat(meter_days, ignore_index=True)
        if meter_days
        else meter_day_completeness(pd.DataFrame()),
        anomalies=anomalies_frame,
    )


def batch_days(conn: psycopg.Connection, first: date, last: date) -> set[date]:
    """Every day the batches that touched `first`..`last` touched: the days whose reports count them too."""
    rows = conn.execute(
        f"SELECT DISTINCT day FROM ops.ingest_days WHERE batch_id IN ({BATCHES})",
        {"days": [day.isoformat() for day in days_between(first, last)]},
    ).fetchall()
    return {day for (day,) in rows}


def batch_rows(conn: psycopg.Connection, suite: str, batch_id: str) -> pd.DataFrame:
    """The rows stored from batch `batch_id` in the table that suite `suite` (`validated_<source>`) guards."""
    contract = CONTRACTS[suite.removeprefix("validated_")]
    query = sql.SQL("SELECT {} FROM ops.{} WHERE batch_id = %s").format(
        sql.SQL(", ").join(sql.Identifier(c) for c in contract.columns), sql.Identifier(contract.table)
    )
    return read_frame(conn, query.as_string(conn), (batch_id,))
