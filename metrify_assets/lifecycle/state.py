"""Where each day of each tiered dataset is (`ops.lifecycle_days`), and the log of every lifecycle
action (`ops.lifecycle_log`)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import TYPE_CHECKING

import psycopg

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class DayState:
    dataset: str
    day: date
    tier: str
    storage_class: str
    object_key: str
    manifest_key: str
    row_count: int
    bytes: int
    checksum: str
    sha256: str
    verified_at: datetime
    moved_at: datetime
    hot_deleted_at: datetime | None = None
    hot_rows_deleted: int | None = None
    kept_checksum: str | None = None
    restored_at: datetime | None = None
    keep_hot_until: date | None = None
    restore_requested_at: datetime | None = None

    def hot_gone(self) -> bool:
        """The day's rows were deleted from PostgreSQL and not restored since."""
        return self.hot_deleted_at is not None and (
            self.restored_at is None or self.restored_at < self.hot_deleted_at
        )


_COLUMNS = ", ".join(f.name for f in fields(DayState))


def lock_day(conn: psycopg.Connection, dataset: str, day: date) -> None:
    """Serialise the lifecycle's steps on one dataset-day (copy, move, hot deletion, restore) until
    the transaction ends: two writers of the same day's copy would leave the state and the lake apart."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtext('lifecycle:' || %s), %s)", (dataset, day.toordinal()))


def get(conn: psycopg.Connection, dataset: str, day: date) -> DayState | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM ops.lifecycle_days WHERE dataset = %s AND day = %s", (dataset, day)
    ).fetchone()
    return DayState(*row) if row else None


def days(conn: psycopg.Connection, dataset: str, first: date, last: date) -> list[DayState]:
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM ops.lifecycle_days WHERE dataset = %s AND day BETWEEN %s AND %s ORDER BY day",
        (dataset, first, last),
    ).fetchall()
    return [DayState(*r) for r in rows]


def record_copy(conn: psycopg.Connection, state: DayState) -> None:
    """Upsert the day's verified copy (a new copy keeps the day's hot-deletion and restore history)."""
    conn.execute(
        "INSERT INTO ops.lifecycle_days (dataset, day, tier, storage_class, object_key, manifest_key, "
        "row_count, bytes, checksum, sha256, verified_at, moved_at) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (dataset, day) DO UPDATE SET tier = EXCLUDED.tier, storage_class = EXCLUDED.storage_class, "
        "object_key = EXCLUDED.object_key, manifest_key = EXCLUDED.manifest_key, row_count = EXCLUDED.row_count, "
        "bytes = EXCLUDED.bytes, checksum = EXCLUDED.checksum, sha256 = EXCLUDED.sha256, "
        "verified_at = EXCLUDED.verified_at, moved_at = EXCLUDED.moved_at, restore_requested_at = NULL",
        (
            state.dataset,
            state.day,
            state.tier,
            state.storage_class,
            state.object_key,
            state.manifest_key,
            state.row_count,
            state.bytes,
            state.checksum,
            state.sha256,
            state.verified_at,
            state.moved_at,
        ),
    )


def record_move(
    conn: psycopg.Connection, dataset: str, day: date, tier: str, storage_class: str, now: datetime
) -> None:
    conn.execute(
        "UPDATE ops.lifecycle_days SET tier = %s, storage_class = %s, moved_at = %s, verified_at = %s, "
        "restore_requested_at = NULL WHERE dataset = %s AND day = %s",
        (tier, storage_class, now, now, dataset, day),
    )


def record_hot_deleted(
    conn: psycopg.Connection, dataset: str, day: date, rows: int, now: datetime, kept_checksum: str | None
) -> None:
    """The day's hot rows were deleted, but for those a hold kept (`kept_checksum`: they are in the copy;
    `record_kept_checksum` records late rows merged into it the same way)."""
    conn.execute(
        "UPDATE ops.lifecycle_days SET hot_deleted_at = %s, hot_rows_deleted = coalesce(hot_rows_deleted, 0) + %s, "
        "kept_checksum = %s, keep_hot_until = NULL WHERE dataset = %s AND day = %s",
        (now, rows, kept_checksum, dataset, day),
    )


def record_kept_checksum(conn: psycopg.Connection, dataset: str, day: date, kept_checksum: str) -> None:
    """The hot rows of a day whose hot rows were deleted are in its copy too (late rows merged into
    it): recorded as a hold's kept rows are, so they go once the copy is archived, unread."""
    conn.execute(
        "UPDATE ops.lifecycle_days SET kept_checksum = %s WHERE dataset = %s AND day = %s",
        (kept_checksum, dataset, day),
    )


def record_restored(
    conn: psycopg.Connection, dataset: str, day: date, now: datetime, keep_until: date
) -> None:
    conn.execute(
        "UPDATE ops.lifecycle_days SET restored_at = %s, keep_hot_until = %s, restore_requested_at = NULL "
        "WHERE dataset = %s AND day = %s",
        (now, keep_until, dataset, day),
    )


def record_restore_requested(conn: psycopg.Connection, dataset: str, day: date, now: datetime) -> None:
    conn.execute(
        "UPDATE ops.lifecycle_days SET restore_requested_at = coalesce(restore_requested_at, %s) "
        "WHERE dataset = %s AND day = %s",
        (now, dataset, day),
    )


def forget(conn: psycopg.Connection, dataset: str, day: date) -> None:
    """The day's copy expired: no tier holds it any more."""
    conn.execute("DELETE FROM ops.lifecycle_days WHERE dataset = %s AND day = %s", (dataset, day))


def log(
    conn: psycopg.Connection,
    dataset: str,
    day: date | None,
    action: str,
    detail: str | None = None,
    rows: int | None = None,
    size: int | None = None,
    dry_run: bool = False,
    run_id: str | None = None,
) -> None:
    conn.execute(
        "INSERT INTO ops.lifecycle_log (run_id, dataset, day, action, detail, rows, bytes, dry_run) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        (run_id, dataset, day, action, detail, rows, size, dry_run),
    )


def tier_table(conn: psycopg.Connection) -> pd.DataFrame:
    """Days, rows and bytes per dataset and tier, with the oldest and newest day: the UI's summary."""
    # Imported here: pandas would cost `metrify holds`, which logs its actions here, over a second.
    from metrify_assets.storage.frames import read_frame

    return read_frame(
        conn,
        "SELECT dataset, tier, storage_class, count(*) AS days, sum(row_count)::bigint AS rows, "
        "sum(bytes)::bigint AS bytes, count(*) FILTER (WHERE hot_deleted_at IS NOT NULL "
        "AND (restored_at IS NULL OR restored_at < hot_deleted_at)) AS days_hot_deleted, "
        "min(day) AS oldest_day, max(day) AS newest_day FROM ops.lifecycle_days "
        "GROUP BY 1, 2, 3 ORDER BY 1, array_position(ARRAY['warm', 'cold', 'archive'], tier)",
    )
