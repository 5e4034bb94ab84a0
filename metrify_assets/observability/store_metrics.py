"""Gauges read from PostgreSQL at scrape time, each by an indexed query whose cost follows what is
current (open alerts, the backlog, the newest day, the grid nodes), never the history held.

What a later scrape can reuse is kept in `StoreState`: the newest record time found (so the next
search starts there and the BRIN index skips all older blocks) and the anomaly rate of the newest
scored day (recomputed only when that day is scored again).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import psycopg
from prometheus_client.core import GaugeMetricFamily, Metric
from psycopg import sql

from metrify_assets.alerts.store import KINDS, SEVERITIES
from metrify_assets.contracts import CONTRACTS, SourceContract
from metrify_assets.observability.families import gauge
from metrify_assets.observability.ledger_metrics import REPLAY
from metrify_assets.quality.replayable import REPLAYABLE_UNRESOLVED
from metrify_assets.resources.lake import ARCHIVE_CLASSES
from metrify_assets.storage.days import HOT_GONE

GRID_STATES = ("normal", "alert", "emergency")
QUALITY_WINDOW = timedelta(hours=1)
# A meter's local day can start up to 14 h before its UTC date: two days below the newest ingested
# local day is certainly below its newest record.
DAY_MARGIN = timedelta(days=2)


@dataclass
class StoreState:
    last_record: dict[str, datetime] = field(default_factory=dict)  # source -> newest record time seen
    anomaly: tuple[tuple[Any, ...], float | None] | None = None  # (newest day's scoring, its rate)


def _scalar(conn: psycopg.Connection, query: str | sql.Composed, params: Sequence[Any] | None = None) -> Any:
    row = conn.execute(query, params).fetchone()
    return None if row is None else row[0]


def _newest_record(conn: psycopg.Connection, contract: SourceContract, since: datetime) -> datetime | None:
    query = sql.SQL("SELECT max({t}) FROM ops.{table} WHERE {t} >= %s").format(
        t=sql.Identifier(contract.time_field), table=sql.Identifier(contract.table)
    )
    value = _scalar(conn, query, (since,))
    return value if isinstance(value, datetime) else None


def last_record_time(
    conn: psycopg.Connection, contract: SourceContract, state: StoreState
) -> datetime | None:
    """The newest stored record's event time, searched from the last one found (rows deleted since:
    from the newest local day the source stored records on, `ops.ingest_days`)."""
    known = state.last_record.get(contract.source)
    newest = _newest_record(conn, contract, known) if known is not None else None
    if newest is None:
        day = _scalar(
            conn,
            "SELECT max(day) FROM ops.ingest_days WHERE source = %s AND records > 0",
            (contract.source,),
        )
        if not isinstance(day, date):
            return None
        since = datetime.combine(day - DAY_MARGIN, time(), tzinfo=UTC)
        newest = _newest_record(conn, contract, since)
    if newest is not None:
        state.last_record[contract.source] = newest
    return newest


# A dead-letter replay (origin `replay`) brings in no new record (ledger_metrics.py): its batches'
# scores and times are those of letters already counted, so the live feed's gauges leave them out. Read
# through ingest_ledger_source_processed_at: the last hour's range of the source, or its newest rows
# walked back past the replays after its newest live batch (as many as replays since, not the history).
LIVE = f"origin <> '{REPLAY}'"


def quality_score(conn: psycopg.Connection, source: str) -> float | None:
    """Record-weighted score of the last hour's live batches; the newest scored live batch's when none
    (replays left out: replaying letters that are still malformed scores 0, blaming the live feed)."""
    value = _scalar(
        conn,
        "SELECT sum(quality_score * records_in) / nullif(sum(records_in) FILTER "
        "(WHERE quality_score IS NOT NULL), 0) FROM ops.ingest_ledger "
        f"WHERE source = %s AND processed_at >= now() - %s AND {LIVE}",
        (source, QUALITY_WINDOW),
    )
    if value is None:
        value = _scalar(
            conn,
            "SELECT quality_score FROM ops.ingest_ledger WHERE source = %s AND quality_score IS NOT NULL "
            f"AND {LIVE} ORDER BY processed_at DESC LIMIT 1",
            (source,),
        )
    return None if value is None else float(value)


def last_batch_time(conn: psycopg.Connection, source: str) -> datetime | None:
    """When the source's newest live batch was processed (a replay during a feed outage must not
    silence the stale-feed alerts)."""
    value = _scalar(
        conn,
        f"SELECT processed_at FROM ops.ingest_ledger WHERE source = %s AND {LIVE} "
        "ORDER BY processed_at DESC LIMIT 1",
        (source,),
    )
    return value if isinstance(value, datetime) else None


def source_families(conn: psycopg.Connection, state: StoreState) -> list[Metric]:
    records = gauge("metrify_source_last_record_timestamp_seconds")
    batches = gauge("metrify_source_last_batch_timestamp_seconds")
    quality = gauge("metrify_quality_score")
    for source, contract in CONTRACTS.items():
        newest = last_record_time(conn, contract, state)
        if newest is not None:
            records.add_metric([source], newest.timestamp())
        last = last_batch_time(conn, source)
        if last is not None:
            batches.add_metric([source], last.timestamp())
        score = quality_score(conn, source)
        if score is not None:
            quality.add_metric([source], score)
    return [records, batches, quality]


def _per_source(metric: GaugeMetricFamily, rows: list[tuple[str, int]]) -> GaugeMetricFamily:
    counts = dict.fromkeys(CONTRACTS, 0) | dict(rows)
    for source in sorted(counts):
        metric.add_metric([source], float(counts[source]))
    return metric


def backlog_families(conn: psycopg.Connection) -> list[Metric]:
    """The dead-letter backlog (what a replay could still clear: duplicates and review rejections are
    kept, unresolved, for as long as quarantine is) and the review queue: both counted through
    partial indexes whose predicates are these queries'."""
    dlq = conn.execute(
        f"SELECT source, count(*) FROM ops.quarantine WHERE {REPLAYABLE_UNRESOLVED} GROUP BY source"
    ).fetchall()
    pending = conn.execute(
        "SELECT source, count(*) FROM ops.review_queue WHERE status = 'pending' GROUP BY source"
    ).fetchall()
    return [
        _per_source(gauge("metrify_dlq_records"), dlq),
        _per_source(gauge("metrify_review_pending"), pending),
    ]


ANOMALY_DAY = (
    "SELECT local_date, max(scored_at), sum(intervals), count(*) FROM ops.anomaly_meter_days "
    "WHERE local_date = (SELECT max(local_date) FROM ops.anomaly_meter_days) GROUP BY local_date"
)
ANOMALY_RATE = """
SELECT avg(s.is_anomaly::int)::float8
FROM ops.anomaly_meter_days d
LEFT JOIN ops.meters m USING (meter_id)
JOIN ops.anomaly_scores s ON s.meter_id = d.meter_id
    AND s.reading_start >= (d.local_date::timestamp AT TIME ZONE coalesce(m.timezone, 'UTC'))
    AND s.reading_start < ((d.local_date + 1)::timestamp AT TIME ZONE coalesce(m.timezone, 'UTC'))
WHERE d.local_date = %s
"""


def anomaly_rate(conn: psycopg.Connection, state: StoreState) -> float | None:
    """Anomalous share of the newest scored day's readings. Its readings are counted again only when
    the day was scored again (its meter-days' newest `scored_at`, count or intervals changed)."""
    row = conn.execute(ANOMALY_DAY).fetchone()
    if row is None:
        return None
    key = tuple(row)
    if state.anomaly is None or state.anomaly[0] != key:
        state.anomaly = (key, _scalar(conn, ANOMALY_RATE, (row[0],)))
    rate = state.anomaly[1]
    return None if rate is None else float(rate)


def meter_families(conn: psycopg.Connection, state: StoreState) -> list[Metric]:
    anomaly = gauge("metrify_anomaly_rate")
    rate = anomaly_rate(conn, state)
    if rate is not None:
        anomaly.add_metric([], rate)
    vee = gauge("metrify_vee_estimated_share")
    share = _scalar(
        conn,
        "SELECT sum(estimated_intervals)::float8 / nullif(sum(expected_intervals), 0) FROM ops.vee_days "
        "WHERE local_date = (SELECT max(local_date) FROM ops.vee_days)",
    )
    if share is not None:
        vee.add_metric([], float(share))
    return [anomaly, vee]


# Distinct nodes by skipping through the primary key (grid_node_id, measured_at): one probe a node.
GRID_NODES = """
WITH RECURSIVE nodes AS (
    SELECT min(grid_node_id) AS id FROM ops.grid_status
    UNION ALL
    SELECT (SELECT min(grid_node_id) FROM ops.grid_status WHERE grid_node_id > nodes.id)
    FROM nodes WHERE nodes.id IS NOT NULL
)
SELECT id FROM nodes WHERE id IS NOT NULL
"""
# A node's events still open (partial index): the worst state, then the newest, is current.
OPEN_STATES = (
    "SELECT DISTINCT ON (grid_node_id) grid_node_id, state FROM ops.grid_state_events "
    "WHERE ended_at IS NULL ORDER BY grid_node_id, state = 'emergency' DESC, started_at DESC"
)


def grid_families(conn: psycopg.Connection) -> list[Metric]:
    current: dict[str, str] = {str(node): "normal" for (node,) in conn.execute(GRID_NODES)}
    current |= {str(node): str(state) for node, state in conn.execute(OPEN_STATES)}
    metric = gauge("metrify_grid_state")
    for node in sorted(current):
        for state in GRID_STATES:
            metric.add_metric([node, state], 1.0 if current[node] == state else 0.0)
    return [metric]


# Late rows a lifecycle run kept hot for an archived copy (`late_rows_kept`: lifecycle/tiers.py): per
# day, the newest such count since its hot rows left, while they have not come back (a restore) and
# its copy is still archived (a restore, or the copy's expiry, ends the wait). Read from the log, which
# the `ops` retention bounds; each weekly pass logs a day still waiting again.
LATE_ROWS_WAITING = f"""
SELECT l.dataset, sum(l.rows) FROM (
    SELECT DISTINCT ON (dataset, day) dataset, day, rows, at FROM ops.lifecycle_log
    WHERE action = 'late_rows_kept' AND NOT dry_run ORDER BY dataset, day, at DESC, log_id DESC
) l
JOIN ops.lifecycle_days d USING (dataset, day)
WHERE l.at >= d.hot_deleted_at AND {HOT_GONE}
  AND d.storage_class = ANY(%s)
GROUP BY 1
"""


def lifecycle_families(conn: psycopg.Connection) -> list[Metric]:
    """Late rows waiting hot for a restore of their archived day, per dataset (0 for one with none)."""
    rows = conn.execute(LATE_ROWS_WAITING, (list(ARCHIVE_CLASSES),)).fetchall()
    return [_per_source(gauge("metrify_lifecycle_late_rows_waiting"), [(str(d), int(n)) for d, n in rows])]


def alert_families(conn: psycopg.Connection) -> list[Metric]:
    """Open alerts by kind and severity, 0 for each known kind and severity without one (a resolved
    alert's series drops to 0 instead of vanishing)."""
    rows = conn.execute(
        "SELECT kind, severity, count(*) FROM ops.alerts WHERE resolved_at IS NULL GROUP BY 1, 2"
    ).fetchall()
    counts = {(str(k), str(s)): int(n) for k, s, n in rows}
    metric = gauge("metrify_open_alerts")
    for kind in sorted(set(KINDS) | {k for k, _ in counts}):
        for severity in SEVERITIES:
            metric.add_metric([kind, severity], float(counts.get((kind, severity), 0)))
    return [metric]
