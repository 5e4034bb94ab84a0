"""Create or update the `ops` schema. Idempotent: safe on every run."""

from __future__ import annotations

import hashlib
from functools import cache
from importlib.resources import files

import psycopg

# (database, schema digest) pairs this process has already brought up to date: every asset run and
# sensor tick calls `migrate`, and re-running the DDL each time would be wasted round trips and locks.
_applied: set[tuple[str, str]] = set()


@cache
def schema_sql() -> str:
    return files("metrify_assets.storage").joinpath("schema.sql").read_text()


@cache
def _schema_digest() -> str:
    return hashlib.sha256(schema_sql().encode()).hexdigest()


def migrate(conn: psycopg.Connection) -> None:
    """Apply `schema.sql` (every statement is IF NOT EXISTS), once per database and process."""
    key = (conn.info.dsn, _schema_digest())
    if key in _applied:
        return
    with conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(hashtext('metrify.migrate'))")
        cur.execute(schema_sql().encode())
    conn.commit()
    _applied.add(key)


def truncate_ops(conn: psycopg.Connection) -> None:
    """Empty every `ops` table and commit: tests and benchmarks start from empty tables."""
    row = conn.execute(
        "SELECT string_agg(format('%I.%I', schemaname, tablename), ', ') FROM pg_tables "
        "WHERE schemaname = 'ops'"
    ).fetchone()
    if row and row[0]:
        conn.execute(f"TRUNCATE {row[0]}")
    conn.commit()
