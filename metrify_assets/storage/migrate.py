"""Versioned migrations of the `ops` schema: numbered SQL files applied once, recorded in a table.

`migrations/NNNN_name.sql` run in order, each in its own transaction, and land in
`ops.schema_version` with their checksum. A migration already applied is never run again, and an
applied file whose text changed is an error (add a new migration instead). A database created by the
pre-versioning `schema.sql` (tables, no version table) upgrades in place: 0001 is that schema with
every statement `IF NOT EXISTS`, so it applies as a no-op there, and the later migrations follow.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib.resources import files

import psycopg

MIGRATIONS_PACKAGE = "metrify_assets.storage.migrations"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
# Databases this process has brought up to date (by DSN): resources connect many times per run.
_current: set[str] = set()


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


@dataclass(frozen=True)
class AppliedMigration:
    version: int
    name: str
    checksum: str
    applied_at: datetime


class MigrationError(RuntimeError):
    """The database's recorded migrations disagree with this release's files."""


@cache
def migrations() -> tuple[Migration, ...]:
    """This release's migrations, in version order."""
    found = []
    for entry in files(MIGRATIONS_PACKAGE).iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text()))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise MigrationError(f"migrations must be numbered 1..n without gaps, found {versions}")
    return tuple(found)


def applied(conn: psycopg.Connection) -> list[AppliedMigration]:
    """What the database has recorded (empty for a new database)."""
    exists = conn.execute("SELECT to_regclass('ops.schema_version')").fetchone()
    if not exists or exists[0] is None:
        return []
    rows = conn.execute(
        "SELECT version, name, checksum, applied_at FROM ops.schema_version ORDER BY version"
    ).fetchall()
    return [AppliedMigration(*row) for row in rows]


def pending(conn: psycopg.Connection) -> list[Migration]:
    done = {m.version for m in applied(conn)}
    return [m for m in migrations() if m.version not in done]


def _verify(recorded: list[AppliedMigration]) -> None:
    known = {m.version: m for m in migrations()}
    for row in recorded:
        mine = known.get(row.version)
        if mine is None:
            raise MigrationError(
                f"database has migration {row.version} ({row.name}) that this release does not know: "
                "it was migrated by a newer Metrify"
            )
        if mine.checksum != row.checksum:
            raise MigrationError(
                f"migration {row.version} ({row.name}) changed after it was applied; "
                "add a new migration instead of editing an applied one"
            )


def migrate(conn: psycopg.Connection) -> list[Migration]:
    """Apply every pending migration (under an advisory lock, so concurrent runs take turns).

    Returns the migrations applied now. Cheap after the first call in a process.
    """
    dsn = conn.info.dsn
    if dsn in _current:
        return []
    conn.commit()
    done: list[Migration] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('metrify.migrate'))")
        conn.execute("CREATE SCHEMA IF NOT EXISTS ops")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS ops.schema_version (version integer PRIMARY KEY, name text NOT NULL, "
            "checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        recorded = applied(conn)
        _verify(recorded)
        have = {m.version for m in recorded}
        for migration in migrations():
            if migration.version in have:
                continue
            conn.execute(migration.sql.encode())
            _record(conn, migration)
            done.append(migration)
    _current.add(dsn)
    return done


@contextmanager
def migrated_connection(url: str, autocommit: bool = False) -> Iterator[psycopg.Connection]:
    """A connection to the database at `url`, brought to the current schema version first (once per
    process and database), that commits on success and rolls back on error."""
    with psycopg.connect(url, autocommit=autocommit) as conn:
        migrate(conn)
        yield conn


def _record(conn: psycopg.Connection, migration: Migration) -> None:
    conn.execute(
        "INSERT INTO ops.schema_version (version, name, checksum) VALUES (%s, %s, %s)",
        (migration.version, migration.name, migration.checksum),
    )


def forget_applied() -> None:
    """Forget which databases this process migrated (tests that drop and re-create a schema)."""
    _current.clear()


def truncate_ops(conn: psycopg.Connection) -> None:
    """Empty every `ops` table but the migration record and the append-only audit log (its trigger
    refuses TRUNCATE), and commit: tests and benchmarks start empty."""
    row = conn.execute(
        "SELECT string_agg(format('%I.%I', schemaname, tablename), ', ') FROM pg_tables "
        "WHERE schemaname = 'ops' AND tablename NOT IN ('schema_version', 'audit_log')"
    ).fetchone()
    if row and row[0]:
        conn.execute(f"TRUNCATE {row[0]}")
    conn.commit()
