"""Versioned migrations: applied once, recorded, verified; a pre-versioning database upgrades in place."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from metrify_assets.resources import PostgresResource
from metrify_assets.storage import migrate as migrations

pytestmark = pytest.mark.postgres
OLD_SCHEMA = Path(__file__).parents[1] / "fixtures" / "ops_schema_before_migrations.sql"


@pytest.fixture
def empty_db(pg_resource: PostgresResource, request: pytest.FixtureRequest) -> Iterator[str]:
    """A new, empty database on the session's server; dropped afterwards."""
    name = f"mig_{abs(hash(request.node.nodeid)) % 10**8}"
    server = pg_resource.get_url()
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name}")
        admin.execute(f"CREATE DATABASE {name}")
    params = conninfo_to_dict(server)
    params["dbname"] = name
    yield make_conninfo(**params)
    migrations.forget_applied()
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def versions(conn: psycopg.Connection) -> list[int]:
    return [m.version for m in migrations.applied(conn)]


def test_a_new_database_gets_every_migration_once(empty_db: str) -> None:
    with psycopg.connect(empty_db) as conn:
        applied = migrations.migrate(conn)
        assert [m.version for m in applied] == [m.version for m in migrations.migrations()]
        assert versions(conn) == [m.version for m in migrations.migrations()]
        assert migrations.pending(conn) == []
    migrations.forget_applied()
    with psycopg.connect(empty_db) as conn:
        assert migrations.migrate(conn) == []  # recorded: nothing runs twice


def test_a_database_made_by_the_old_schema_upgrades_in_place_keeping_its_rows(empty_db: str) -> None:
    with psycopg.connect(empty_db) as conn:
        conn.execute(OLD_SCHEMA.read_text().encode())
        conn.execute(
            "INSERT INTO ops.meter_readings (meter_id, reading_start, interval_minutes, energy_kwh, "
            "record_version, batch_id) VALUES ('M1', '2026-03-01T00:00Z', 15, 0.25, 1, 'b1')"
        )
        conn.execute(
            "INSERT INTO ops.ingest_ledger (batch_id, source, origin, origin_ref, raw_key, records_in, "
            "accepted, flagged, quarantined) VALUES ('b1', 'meter_readings', 'landing', 'f', 'k', 1, 1, 0, 0)"
        )
        conn.commit()
        assert migrations.applied(conn) == []
        assert [m.version for m in migrations.pending(conn)] == [m.version for m in migrations.migrations()]
        migrations.migrate(conn)
        assert versions(conn) == [m.version for m in migrations.migrations()]
        assert conn.execute("SELECT meter_id, energy_kwh FROM ops.meter_readings").fetchall() == [
            ("M1", 0.25)
        ]
        assert conn.execute("SELECT count(*) FROM ops.ingest_days").fetchone() == (0,)  # from 0002
        columns = {
            r[0]
            for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = 'ops' "
                "AND table_name = 'enriched_meter_readings'"
            ).fetchall()
        }
        assert "quality_flags" in columns


def test_an_edited_applied_migration_is_refused(empty_db: str) -> None:
    with psycopg.connect(empty_db) as conn:
        migrations.migrate(conn)
        conn.execute("UPDATE ops.schema_version SET checksum = 'edited' WHERE version = 1")
        conn.commit()
    migrations.forget_applied()
    with psycopg.connect(empty_db) as conn, pytest.raises(migrations.MigrationError, match="changed after"):
        migrations.migrate(conn)


def test_a_database_from_a_newer_release_is_refused(empty_db: str) -> None:
    with psycopg.connect(empty_db) as conn:
        migrations.migrate(conn)
        conn.execute("INSERT INTO ops.schema_version (version, name, checksum) VALUES (999, 'future', 'x')")
        conn.commit()
    migrations.forget_applied()
    with psycopg.connect(empty_db) as conn, pytest.raises(migrations.MigrationError, match="newer Metrify"):
        migrations.migrate(conn)


def test_the_resource_migrates_on_first_connection(empty_db: str) -> None:
    with PostgresResource(url=empty_db).connect() as conn:
        assert migrations.pending(conn) == []


def test_0023_backfills_a_decisions_account_from_its_audit_entry_and_leaves_the_unknown_null(
    empty_db: str,
) -> None:
    """Decisions made before 0023 stored only the reviewer's `--by`. Where the decision's own audit
    entry (same transaction: the same time, the same reviewer) has an account (since 0022), the
    decision gets it; otherwise its account stays NULL, unknown, rather than guessed."""
    (backfill,) = [m for m in migrations.migrations() if m.version == 23]
    with psycopg.connect(empty_db) as conn:
        migrations.migrate(conn)
        conn.execute(
            "INSERT INTO ops.review_queue (batch_id, record_index, source, record_key, reasons, status, "
            "decided_by, decided_at, decision_note) VALUES "
            "('b', 0, 'meter_readings', 'M1|t0', 'spike', 'approved', 'ana', '2026-03-01T10:00Z', 'ok'), "
            "('b', 1, 'meter_readings', 'M1|t1', 'spike', 'rejected', 'bo', '2026-03-01T11:00Z', 'bad'), "
            "('b', 2, 'meter_readings', 'M1|t2', 'spike', 'approved', 'cy', '2026-03-01T12:00Z', 'ok'), "
            "('b', 3, 'meter_readings', 'M1|t3', 'spike', 'approved', 'dee', '2026-03-01T13:00Z', 'ok'), "
            "('b', 4, 'meter_readings', 'M1|t4', 'spike', 'pending', NULL, NULL, NULL)"
        )
        conn.execute(
            "INSERT INTO ops.audit_log (at, actor, action, target, channel, account) VALUES "
            "('2026-03-01T10:00Z', 'ana', 'review.approve', 'review:b#0', 'cli', 'rosa'), "  # its entry
            "('2026-03-01T11:00Z', 'bo', 'review.reject', 'review:b#1', 'cli', NULL), "  # before 0022
            "('2026-03-01T09:00Z', 'cy', 'review.approve', 'review:b#2', 'cli', 'sam'), "  # an earlier one
            "('2026-03-01T13:00Z', 'eve', 'review.approve', 'review:b#3', 'api', 'eve'), "  # not its reviewer
            "('2026-03-01T14:00Z', 'ana', 'review.approve', 'review:b#4', 'cli', 'rosa')"  # then reopened
        )
        conn.execute(backfill.sql.encode())  # as on a database decided before 0023 (idempotent)
        accounts = conn.execute(
            "SELECT record_index, decided_account FROM ops.review_queue ORDER BY record_index"
        ).fetchall()
    assert accounts == [(0, "rosa"), (1, None), (2, None), (3, None), (4, None)]
