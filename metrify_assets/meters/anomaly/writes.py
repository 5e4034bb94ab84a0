"""Merging a run's scores into `ops.anomaly_scores` and `ops.anomaly_meter_days` (migration 0005):
a re-scored day replaces its rows, in one transaction."""

from __future__ import annotations

import psycopg

from metrify_assets.meters.anomaly.scoring import DAY_COLUMNS, SCORE_COLUMNS, RunScores
from metrify_assets.storage.writes import merge_frame


def write_scores(conn: psycopg.Connection, scores: RunScores) -> None:
    """Merge reading scores by (meter_id, reading_start) and meter-day scores by (meter_id, local_date)."""
    with conn.cursor() as cur, conn.transaction():
        if len(scores.readings):
            merge_frame(
                cur,
                "anomaly_scores",
                scores.readings,
                SCORE_COLUMNS,
                ["meter_id", "reading_start"],
                "scored_at",
            )
        if len(scores.days):
            merge_frame(
                cur, "anomaly_meter_days", scores.days, DAY_COLUMNS, ["meter_id", "local_date"], "scored_at"
            )
