"""Idempotent writes into the `ops` schema.

Rows are bulk-loaded with COPY into a temporary table, then merged by natural key: a row replaces the
stored one only when its `record_version` is not older, so replaying any batch, in any order, leaves
the same final state.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from metrify_assets.contracts import SourceContract
from metrify_assets.storage.days import local_day

if TYPE_CHECKING:  # the frames come from the callers: the ledger's readers (`metrify status`) need no pandas
    import pandas as pd
    import pyarrow as pa


def null_rows(frame: pd.DataFrame) -> Iterator[tuple[Any, ...]]:
    """The frame's rows as tuples, NaN / NA as None (NULL)."""
    clean = frame.astype(object).where(frame.notna(), None)
    yield from clean.itertuples(index=False, name=None)


def merge_frame(
    cur: psycopg.Cursor[Any], table: str, frame: pd.DataFrame, columns: list[str], key: list[str], stamp: str
) -> None:
    """Merge `frame`'s `columns` into `ops.<table>` on its primary key `key`: a row under a stored key
    replaces it, `stamp` set to now(). Rows go in key order, so two writers of overlapping keys wait
    for each other instead of deadlocking. For derived tables written whole per key (anomaly scores,
    forecasts), not versioned records (`upsert_rows`)."""
    staging = f"_merge_{table}"
    cur.execute(f"CREATE TEMP TABLE {staging} (LIKE ops.{table} INCLUDING DEFAULTS) ON COMMIT DROP")
    names = ", ".join(columns)
    with cur.copy(f"COPY {staging} ({names}) FROM STDIN") as copy:
        for row in null_rows(frame[columns]):
            copy.write_row(row)
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
    cur.execute(
        f"INSERT INTO ops.{table} ({names}) SELECT {names} FROM {staging} ORDER BY {', '.join(key)} "
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}, {stamp} = now()"
    )
    cur.execute(f"DROP TABLE {staging}")


def _copy_frame(cur: psycopg.Cursor, table: sql.Identifier, frame: pd.DataFrame) -> None:
    """COPY a DataFrame's rows into `table` as CSV written by Arrow (C++ speed).

    Arrow's CSV matches PostgreSQL's CSV COPY: nulls are unquoted empty fields, strings are quoted
    (so an empty string stays distinct from NULL), timestamps are ISO 8601 (see `_utc_text`).
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    cols = sql.SQL(", ").join(sql.Identifier(c) for c in frame.columns)
    stmt = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(table, cols)
    buf = io.BytesIO()
    data = pa.Table.from_pandas(frame, preserve_index=False)
    for i, column in enumerate(data.schema):
        if pa.types.is_timestamp(column.type) and column.type.tz is not None:
            data = data.set_column(i, column.name, _utc_text(data.column(i)))
    pacsv.write_csv(data, buf, pacsv.WriteOptions(include_header=False))
    with cur.copy(stmt) as copy:
        copy.write(buf.getvalue())


def _utc_text(times: pa.ChunkedArray) -> pa.ChunkedArray:
    """Time-zone-aware timestamps as UTC text with a `+00` offset (`2026-03-28 04:00:00.000000+00`).

    Arrow's CSV writer formats an aware timestamp through its time zone database, value by value:
    nine tenths of a batch's CSV time went to its one timestamp column. Its UTC instants cast to a
    naive timestamp and then to text are the same times in a fiftieth of it."""
    import pyarrow as pa
    import pyarrow.compute as pc

    naive = times.cast(pa.timestamp(times.type.unit)).cast(pa.string())
    return pc.binary_join_element_wise(naive, pa.scalar("+00"), "")


def staged(contract: SourceContract) -> sql.Identifier:
    """The temporary table `upsert_rows` stages a batch's rows in: it lasts until the transaction
    ends, so the batch's other writes (`record_days`, `quarantine.supersede`) read the rows there."""
    return sql.Identifier(f"_in_{contract.table}")


def upsert_rows(conn: psycopg.Connection, contract: SourceContract, rows: pd.DataFrame) -> int:
    """Merge rows (contract columns + bookkeeping) into `ops.<table>`; returns rows written.

    The caller deduplicates by natural key first: one statement cannot touch a key twice. Rows are
    merged in key order, so two runs that share keys (a replay beside a drain's parallel runs) lock
    them in the same order and wait for each other instead of deadlocking.
    """
    if rows.empty:
        return 0
    table = contract.table
    tmp = staged(contract)
    columns = list(rows.columns)
    updatable = [c for c in columns if c not in contract.key]
    with conn.cursor() as cur:
        cur.execute(
            sql.SQL(
                "CREATE TEMP TABLE IF NOT EXISTS {tmp} (LIKE ops.{t} INCLUDING DEFAULTS) ON COMMIT DROP"
            ).format(tmp=tmp, t=sql.Identifier(table))
        )
        cur.execute(sql.SQL("TRUNCATE {}").format(tmp))
        _copy_frame(cur, tmp, rows)
        cur.execute(
            sql.SQL(
                "INSERT INTO ops.{t} AS t ({cols}) SELECT {cols} FROM {tmp} ORDER BY {key} "
                "ON CONFLICT ({key}) DO UPDATE SET {sets} "
                "WHERE excluded.record_version >= t.record_version"
            ).format(
                t=sql.Identifier(table),
                tmp=tmp,
                cols=sql.SQL(", ").join(sql.Identifier(c) for c in columns),
                key=sql.SQL(", ").join(sql.Identifier(k) for k in contract.key),
                sets=sql.SQL(", ").join(
                    sql.SQL("{c} = excluded.{c}").format(c=sql.Identifier(c)) for c in updatable
                ),
            )
        )
        return cur.rowcount


def record_days(
    conn: psycopg.Connection,
    contract: SourceContract,
    batch_id: str,
    stored: int,
    arrival_day: date,
    replay: bool = False,
) -> int:
    """Record the local days the `stored` rows just upserted (still in the batch's temp table) belong to.

    Meter readings fall on the meter's local day (UTC for a meter not in the registry, as dbt does);
    grid and weather samples on their UTC day. A batch that stored nothing (all quarantined) is
    recorded on its arrival day with 0 records, so the day's quality report (and VEE's lookup of the
    quarantined readings) still finds it; `ops.touched_days` marks such rows `stored = false`
    (migration 0019): nothing new was stored, so no day is rebuilt for it. A dead-letter `replay` that stored nothing
    records no day at all: its records were recorded by their original batches, and its own
    processing day has nothing of it. Returns the number of days recorded.
    """
    if not stored:
        if replay:
            return 0
        days: sql.Composable = sql.SQL("SELECT %(day)s::date AS day, 0 AS records")
    else:
        day, rows = local_day(contract, staged(contract))
        days = sql.SQL("SELECT {day} AS day, count(*) AS records FROM {rows} GROUP BY 1").format(
            day=day, rows=rows
        )
    # A day the batch already stamped (the batch recorded again) is left out before the insert:
    # `ON CONFLICT DO NOTHING` alone would still draw its `seq`, and the gap it leaves holds the
    # cursors of `late_days_sensor` and `metrify run` back until it settles (`late_days.settled_cursor`).
    with conn.cursor() as cur:
        cur.execute(
            sql.SQL(
                "INSERT INTO ops.ingest_days (batch_id, source, day, records) "
                "SELECT %(batch_id)s, %(source)s, d.day, d.records FROM ({days}) d "
                "WHERE NOT EXISTS (SELECT 1 FROM ops.ingest_days i WHERE i.batch_id = %(batch_id)s AND i.day = d.day) "
                "ON CONFLICT (batch_id, day) DO NOTHING"
            ).format(days=days),
            {"batch_id": batch_id, "source": contract.source, "day": arrival_day},
        )
        return cur.rowcount


def enqueue_review(
    conn: psycopg.Connection, source: str, batch_id: str, rows: Sequence[tuple[int, str, str]]
) -> int:
    """Queue flagged records (record_index, record_key, reasons); decisions already made are kept."""
    if not rows:
        return 0
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO ops.review_queue (batch_id, record_index, source, record_key, reasons) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (batch_id, record_index) DO NOTHING",
            [(batch_id, i, source, key, reasons) for i, key, reasons in rows],
        )
    return len(rows)


@dataclass(frozen=True)
class LedgerEntry:
    batch_id: str
    source: str
    origin: str
    origin_ref: str
    raw_key: str
    records_in: int
    accepted: int
    flagged: int
    quarantined: int
    quality_score: float | None
    run_id: str | None
    backfill_records: int = 0  # records declared history: not scored for timeliness
    timeliness: float | None = None  # None: nothing in the batch was live


def record_batch(
    conn: psycopg.Connection, entry: LedgerEntry, stage_seconds: Mapping[str, float] | None = None
) -> None:
    """Write the batch's ledger row (the last write of a batch: its presence means 'done'), with the
    seconds the batch spent in each stage so far (observability/stages.py). A batch recorded again
    (a replay, a re-run) gets its new counts and processed_at but keeps when it was first recorded
    and its first stage timings: the exporter's counters and histogram have counted those."""
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO ops.ingest_ledger (batch_id, source, origin, origin_ref, raw_key, records_in, "
            "accepted, flagged, quarantined, quality_score, run_id, backfill_records, timeliness, "
            "stage_seconds) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (batch_id) DO UPDATE SET records_in = excluded.records_in, "
            "accepted = excluded.accepted, flagged = excluded.flagged, quarantined = excluded.quarantined, "
            "quality_score = excluded.quality_score, run_id = excluded.run_id, processed_at = now(), "
            "recorded_at = coalesce(ops.ingest_ledger.recorded_at, ops.ingest_ledger.processed_at), "
            "backfill_records = excluded.backfill_records, timeliness = excluded.timeliness, "
            "stage_seconds = coalesce(ops.ingest_ledger.stage_seconds, excluded.stage_seconds)",
            (
                entry.batch_id,
                entry.source,
                entry.origin,
                entry.origin_ref,
                entry.raw_key,
                entry.records_in,
                entry.accepted,
                entry.flagged,
                entry.quarantined,
                entry.quality_score,
                entry.run_id,
                entry.backfill_records,
                entry.timeliness,
                None if stage_seconds is None else Jsonb(dict(stage_seconds)),
            ),
        )


def record_source_file(
    conn: psycopg.Connection, batch_id: str, source_file: str, lines: Sequence[Sequence[object]] | None
) -> None:
    """Keep with the batch's ledger row (written by `record_batch` in the same transaction) the file
    `metrify ingest` read it from and its records' places there (ingestion/provenance.py)."""
    conn.execute(
        "UPDATE ops.ingest_ledger SET source_file = %s, source_lines = %s WHERE batch_id = %s",
        (source_file, None if lines is None else Jsonb([list(run) for run in lines]), batch_id),
    )


def ledger_batch_ids(conn: psycopg.Connection, batch_ids: Sequence[str]) -> set[str]:
    """Which of `batch_ids` the ledger holds, looked up by its key: a landing directory's check costs
    what the directory holds, not the ledger's history."""
    if not batch_ids:
        return set()
    rows = conn.execute(
        "SELECT batch_id FROM ops.ingest_ledger WHERE batch_id = ANY(%s)", (list(batch_ids),)
    ).fetchall()
    return {row[0] for row in rows}


@dataclass(frozen=True)
class RecordCounts:
    """What a source's batches held: records in = accepted + quarantined; flagged are accepted."""

    records_in: int
    accepted: int
    flagged: int
    quarantined: int


def record_counts(conn: psycopg.Connection, batch_ids: Sequence[str]) -> dict[str, RecordCounts]:
    """The ledger's counts of `batch_ids` per source (looked up by batch id, the ledger's key)."""
    rows = conn.execute(
        "SELECT source, sum(records_in), sum(accepted), sum(flagged), sum(quarantined) "
        "FROM ops.ingest_ledger WHERE batch_id = ANY(%s) GROUP BY source ORDER BY source",
        (list(batch_ids),),
    ).fetchall()
    return {str(source): RecordCounts(*(int(n) for n in counts)) for source, *counts in rows}


def mark_delivered(
    conn: psycopg.Connection, batch_id: str, stage_seconds: Mapping[str, float] | None = None
) -> None:
    """A Kafka batch's dead letters are sent and its offset committed: nothing left to redo. The
    seconds of the stages after its ledger row (dlq, commit) are added to the row's in the same
    statement, so timing them costs no round trip of its own."""
    conn.execute(
        "UPDATE ops.ingest_ledger SET delivered_at = now(), "
        "stage_seconds = coalesce(stage_seconds, '{}'::jsonb) || %s WHERE batch_id = %s",
        (Jsonb(dict(stage_seconds or {})), batch_id),
    )


def delivered_batch_ids(conn: psycopg.Connection, source: str) -> set[str]:
    """Kafka batches that are done: in the ledger, dead letters sent, offset committed."""
    rows = conn.execute(
        "SELECT batch_id FROM ops.ingest_ledger WHERE source = %s AND delivered_at IS NOT NULL", (source,)
    ).fetchall()
    return {row[0] for row in rows}
