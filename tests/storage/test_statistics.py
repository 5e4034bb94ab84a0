"""Planner statistics: tables that changed past autovacuum's threshold are analyzed before dbt plans."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from metrify_assets.resources import PostgresResource
from metrify_assets.storage.statistics import analyze_stale, stale_tables

pytestmark = pytest.mark.postgres
SCHEMA = "stats_test"


@pytest.fixture
def conn(pg_resource: PostgresResource) -> Iterator[psycopg.Connection]:
    """An autocommit connection with an empty schema of its own (autovacuum off on its tables, so
    only the code under test analyzes them)."""
    with psycopg.connect(pg_resource.get_url(), autocommit=True) as c:
        c.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        c.execute(f"CREATE SCHEMA {SCHEMA}")
        c.execute(f"CREATE TABLE {SCHEMA}.readings (id int PRIMARY KEY) WITH (autovacuum_enabled = false)")
        c.execute(f"CREATE TABLE {SCHEMA}.meters (id int PRIMARY KEY) WITH (autovacuum_enabled = false)")
        yield c
        c.execute(f"DROP SCHEMA {SCHEMA} CASCADE")


def insert(conn: psycopg.Connection, table: str, first: int, count: int) -> None:
    conn.execute(
        f"INSERT INTO {SCHEMA}.{table} SELECT generate_series(%s::int, %s::int)", (first, first + count - 1)
    )
    conn.execute("SELECT pg_stat_force_next_flush()")  # the counters reach pg_stat_* at once
    conn.execute("SELECT 1")


def planner_rows(conn: psycopg.Connection, table: str) -> float:
    row = conn.execute(
        "SELECT reltuples FROM pg_class WHERE oid = %s::regclass", (f"{SCHEMA}.{table}",)
    ).fetchone()
    assert row is not None
    return float(row[0])


def test_a_table_loaded_since_its_last_analyze_is_analyzed_and_a_quiet_one_is_not(
    conn: psycopg.Connection,
) -> None:
    insert(conn, "readings", 1, 5000)
    insert(conn, "meters", 1, 10)  # under autovacuum's 50-row threshold
    assert planner_rows(conn, "readings") < 0  # never analyzed: the planner guesses

    assert [(t.name, t.changed_rows) for t in stale_tables(conn, SCHEMA)] == [("readings", 5000)]
    analyzed = analyze_stale(conn, SCHEMA)

    assert [t.name for t in analyzed] == ["readings"]
    assert planner_rows(conn, "readings") == 5000
    assert planner_rows(conn, "meters") < 0
    conn.execute("SELECT pg_stat_force_next_flush()")
    conn.execute("SELECT 1")
    assert stale_tables(conn, SCHEMA) == []


def test_the_threshold_grows_with_the_table_as_autovacuum_s_does(conn: psycopg.Connection) -> None:
    insert(conn, "readings", 1, 10_000)
    analyze_stale(conn, SCHEMA)
    insert(conn, "readings", 10_001, 900)  # under 50 + 10 % of 10,000
    assert stale_tables(conn, SCHEMA) == []
    insert(conn, "readings", 10_901, 200)  # 1,100 changed: over 1,050
    assert [t.name for t in stale_tables(conn, SCHEMA)] == ["readings"]
