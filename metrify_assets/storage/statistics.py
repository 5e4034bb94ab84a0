"""Planner statistics of the `ops` tables, brought up to date before a dbt build plans its queries.

Autovacuum analyzes a table some time after it changed a lot, on its own schedule. A dbt build that
runs right after a large ingest or VEE run would otherwise plan on the old figures (an empty table's,
on a first run): a filter the planner thinks keeps a hundred rows then drives a nested loop over
hundreds of thousands, and a one-second model takes minutes, or not, depending on when autovacuum
last woke up. Analyzing first, with autovacuum's own threshold, makes the plans depend on the data
only. ANALYZE reads a fixed-size sample, so the cost does not grow with the history held.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql

# Autovacuum's defaults (autovacuum_analyze_threshold, autovacuum_analyze_scale_factor).
ANALYZE_THRESHOLD_ROWS = 50
ANALYZE_SCALE_FACTOR = 0.1


@dataclass(frozen=True)
class StaleTable:
    """A table whose rows changed past the threshold since its last ANALYZE."""

    name: str
    changed_rows: int
    planner_rows: int  # what the planner believed (pg_class.reltuples; -1: never analyzed)


def stale_tables(conn: psycopg.Connection, schema: str = "ops") -> list[StaleTable]:
    """Tables of `schema` with more changed rows since their last ANALYZE than autovacuum allows."""
    rows = conn.execute(
        """
        SELECT s.relname, s.n_mod_since_analyze, c.reltuples::bigint
        FROM pg_stat_user_tables AS s
        JOIN pg_class AS c ON c.oid = s.relid
        WHERE s.schemaname = %s
          AND s.n_mod_since_analyze > %s + %s * greatest(c.reltuples, 0)
        ORDER BY s.relname
        """,
        (schema, ANALYZE_THRESHOLD_ROWS, ANALYZE_SCALE_FACTOR),
    ).fetchall()
    return [StaleTable(name, int(changed), int(planner)) for name, changed, planner in rows]


def analyze_stale(conn: psycopg.Connection, schema: str = "ops") -> list[StaleTable]:
    """ANALYZE the stale tables of `schema`; returns them."""
    stale = stale_tables(conn, schema)
    for table in stale:
        conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(schema, table.name)))
    return stale
