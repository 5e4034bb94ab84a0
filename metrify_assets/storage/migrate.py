"""Create or update the `ops` schema. Idempotent: safe on every run."""

from __future__ import annotations

from importlib.resources import files

import psycopg


def schema_sql() -> str:
    return files("metrify_assets.storage").joinpath("schema.sql").read_text()


def migrate(conn: psycopg.Connection) -> None:
    """Apply `schema.sql` (every statement is IF NOT EXISTS)."""
    with conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(hashtext('metrify.migrate'))")
        cur.execute(schema_sql().encode())
    conn.commit()
