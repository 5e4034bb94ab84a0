"""Merging a run's scores into `ops.anomaly_scores` and `ops.anomaly_meter_days` (migration 0005):
a re-scored day replaces its rows, in one transaction."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd
import psycopg

from metrify_assets.meters.anomaly.scoring import DAY_COLUMNS, SCORE_COLUMNS, RunScores


def _rows(frame: pd.DataFrame) -> Iterator[tuple[Any, ...]]:
    """Rows with NaN / NA as NULL."""
    clean = frame.astype(object).where(frame.notna(), None)
    yield from clean.itertuples(index=False, name=None)


def _merge(cur: psycopg.Cursor, table: str, frame: pd.DataFrame, columns: list[str], key: list[str]) -> None:
    cur.execute(f"CREATE TEMP TABLE _merge (LIKE ops.{table} INCLUDING DEFAULTS) ON COMMIT DROP")
    names = ", ".join(columns)
    with cur.copy(f"COPY _merge ({names}) FROM STDIN") as copy:
        for row in _rows(frame[columns]):
            copy.write_row(row)
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
    cur.execute(
        f"INSERT INTO ops.{table} AS t ({names}) SELECT {names} FROM _merge "
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}, scored_at = now()"
    )
    cur.execute("DROP TABLE _merge")


def write_scores(conn: psycopg.Connection, scores: RunScores) -> None:
    """Merge reading scores by (meter_id, reading_start) and meter-day scores by (meter_id, local_date)."""
    with conn.cursor() as cur, conn.transaction():
        if len(scores.readings):
            _merge(cur, "anomaly_scores", scores.readings, SCORE_COLUMNS, ["meter_id", "reading_start"])
        if len(scores.days):
            _merge(cur, "anomaly_meter_days", scores.days, DAY_COLUMNS, ["meter_id", "local_date"])
