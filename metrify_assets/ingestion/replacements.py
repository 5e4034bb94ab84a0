"""A corrected file that replaces earlier batches of its source (`metrify ingest --replaces`).

Utilities resend corrected exports. The version-wins upsert takes a corrected value under the same
key, but a reading the earlier file filed under a wrong key (a meter id `DE 0002` for `DE0002`, a
wrong time) is another key, and would stay beside the corrected one. A file declared the complete
replacement of earlier batches withdraws them: once it is processed, every row still carrying a
replaced batch's id (a key the new file did not store) is deleted, its day stamped in
`ops.retouched_days` so the next `metrify run` rebuilds what derives from it (VEE, enrichment,
marts), and an `ingest.withdraw` audit entry gives the counts.

`resolve` and `request` run before the file lands (the CLI), so the batch's own transaction finds the
pairs in `ops.batch_replacements` (migration 0029): a landing file's batch id is content-addressed,
known before it lands. `withdraw` runs in that transaction, after the upsert. A rebuild from raw
(`lifecycle/rollback.py`) withdraws the same rows right after replaying the replacing batch, so a
replay of any range, any number of times, leaves the rows the pipeline left.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import psycopg
from psycopg import sql

from metrify_assets.contracts import SourceContract
from metrify_assets.storage import audit
from metrify_assets.storage.audit import Caller
from metrify_assets.storage.days import hot_deleted_days, local_day


class ReplaceError(ValueError):
    """An earlier batch a file cannot replace: nothing was landed or recorded."""


@dataclass(frozen=True)
class Replaced:
    """An earlier batch, as the ledger knows it."""

    batch_id: str
    origin_ref: str
    accepted: int
    first_day: date | None  # the days it stored readings on (ops.ingest_days), None: none stored
    last_day: date | None


@dataclass(frozen=True)
class Withdrawal:
    """What a replacing batch did to the batches it replaces."""

    replaces: tuple[str, ...]
    superseded: int  # their rows the new batch stored again, at its version
    withdrawn: int  # their rows deleted: keys the new batch did not store
    days: tuple[date, ...]  # the days of the withdrawn rows, stamped for rebuilding
    meter_ids: tuple[str, ...]  # meters of withdrawn readings (their cache entries change)


def resolve(conn: psycopg.Connection, source: str, ref: str) -> Replaced:
    """The batch `ref` names (a batch id, or the landing file name or path the ledger keeps as its
    origin), checked replaceable: known, of `source`, and none of its days archived out of the hot
    tier (its rows there are in the lake copy, not in PostgreSQL). Raises `ReplaceError` saying what to do."""
    rows = conn.execute(
        "SELECT batch_id, source, origin_ref, accepted FROM ops.ingest_ledger "
        "WHERE batch_id = %s OR origin_ref = %s ORDER BY processed_at",
        (ref, Path(ref).name),
    ).fetchall()
    if not rows:
        raise ReplaceError(
            f"--replaces {ref}: no batch in ops.ingest_ledger has that batch id or origin (a landing file "
            "name). Give the batch id `metrify run` ingested the earlier file as (`metrify audit`, "
            "ops.ingest_ledger), or the name of the file `metrify ingest` landed it as; a file not yet "
            "ingested is replaced by deleting it from the landing directory"
        )
    batch_id, other, origin_ref, accepted = rows[-1]
    if other != source:
        raise ReplaceError(
            f"--replaces {ref}: batch {batch_id} ({origin_ref}) is of {other}, not {source}: a file "
            "replaces batches of its own source"
        )
    span = conn.execute(
        "SELECT min(day), max(day) FROM ops.ingest_days WHERE batch_id = %s AND records > 0", (batch_id,)
    ).fetchone()
    first, last = span if span else (None, None)
    if first is not None and last is not None:
        gone = hot_deleted_days(conn, source, first, last)
        if gone:
            raise ReplaceError(
                f"--replaces {ref}: batch {batch_id} stored {source} on days archived out of the hot tier "
                f"({gone[0]}..{gone[-1]}, {len(gone)} days): their rows are in the lake copy, not in "
                f"PostgreSQL. Restore them first (`metrify restore --dataset {source} --from {gone[0]} "
                f"--to {gone[-1]}`), then ingest the file again with --replaces"
            )
    return Replaced(str(batch_id), str(origin_ref), int(accepted), first, last)


def request(
    conn: psycopg.Connection,
    source: str,
    batch_id: str,
    file_name: str,
    replaced: list[Replaced],
    caller: Caller,
) -> None:
    """Record that `batch_id` (of the file `file_name` read, not landed yet) replaces `replaced`, with
    an `ingest.replace` audit entry, in the caller's transaction. Refuses a file that is the batch it
    would replace (the same bytes: one batch)."""
    for old in replaced:
        if old.batch_id == batch_id:
            raise ReplaceError(
                f"--replaces {old.batch_id}: the file holds the same records as that batch (the same "
                "content is the same batch): there is nothing to correct"
            )
        conn.execute(
            "INSERT INTO ops.batch_replacements (batch_id, replaces, source, file_name, requested_by) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (batch_id, replaces) DO NOTHING",
            (batch_id, old.batch_id, source, file_name, caller.actor),
        )
    caller.record(
        conn,
        "ingest.replace",
        f"batch:{batch_id}",
        {
            "source": source,
            "file": file_name,
            "replaces": [old.batch_id for old in replaced],
            "replaced_files": [old.origin_ref for old in replaced],
            "replaced_accepted": sum(old.accepted for old in replaced),
        },
        len(replaced),
    )


def replaced_by(conn: psycopg.Connection, batch_ids: list[str]) -> dict[str, list[str]]:
    """Replacing batch -> the batches it replaces, for those of `batch_ids` that replace any."""
    found: dict[str, list[str]] = {}
    for batch_id, replaces in conn.execute(
        "SELECT batch_id, replaces FROM ops.batch_replacements WHERE batch_id = ANY(%s) ORDER BY replaces",
        (batch_ids,),
    ).fetchall():
        found.setdefault(str(batch_id), []).append(str(replaces))
    return found


def _rows_of(contract: SourceContract) -> sql.Composed:
    """The rows of `%(replaces)s` batches within their recorded days (a local day is within a day of
    its UTC instants, whatever the meter's time zone is now): the BRIN index on the time bounds it."""
    return sql.SQL(
        "ops.{table} WHERE batch_id = ANY(%(replaces)s) "
        "AND {time} >= ((%(first)s::date - 1)::timestamp AT TIME ZONE 'UTC') "
        "AND {time} < ((%(last)s::date + 2)::timestamp AT TIME ZONE 'UTC')"
    ).format(table=sql.Identifier(contract.table), time=sql.Identifier(contract.time_field))


@dataclass(frozen=True)
class Pending:
    """A replacing batch's replaced batches, read before its upsert: their days and stored rows."""

    replaces: tuple[str, ...]
    first: date | None  # the days they stored readings on; None: none
    last: date | None
    stored: int  # their rows stored before the upsert

    def params(self) -> dict[str, object]:
        return {"replaces": list(self.replaces), "first": self.first, "last": self.last}


def before_upsert(conn: psycopg.Connection, contract: SourceContract, batch_id: str) -> Pending | None:
    """For a replacing batch, before its upsert (in its transaction): what it replaces; None for a
    batch that replaces nothing (one primary-key probe)."""
    replaces = replaced_by(conn, [batch_id]).get(batch_id)
    if not replaces:
        return None
    span = conn.execute(
        "SELECT min(day), max(day) FROM ops.ingest_days WHERE batch_id = ANY(%s) AND records > 0", (replaces,)
    ).fetchone()
    first, last = span if span else (None, None)
    pending = Pending(tuple(replaces), first, last, 0)
    if first is None:
        return pending
    found = conn.execute(
        sql.SQL("SELECT count(*) FROM {}").format(_rows_of(contract)), pending.params()
    ).fetchone()
    return Pending(pending.replaces, first, last, int(found[0]) if found else 0)


def withdraw(
    conn: psycopg.Connection, contract: SourceContract, batch_id: str, pending: Pending
) -> Withdrawal:
    """After the replacing batch's upsert, in its transaction: delete the rows still carrying a replaced
    batch's id, stamp their days for rebuilding, fill in the counts of `ops.batch_replacements` and
    record an `ingest.withdraw` audit entry (by whoever asked for the replacement, channel dagster)."""
    days: list[date] = []
    owners: list[str] = []
    withdrawn = 0
    if pending.first is not None:
        day, rows = local_day(contract, sql.Identifier("gone"))
        owner = sql.Identifier(contract.key[0])
        query = sql.SQL(
            "WITH gone AS (DELETE FROM {rows_of} RETURNING *), "
            "days AS (INSERT INTO ops.retouched_days (batch_id, source, day) "
            "SELECT DISTINCT %(batch)s, %(source)s, {day} FROM {rows} RETURNING day) "
            "SELECT (SELECT count(*) FROM gone), (SELECT array_agg(DISTINCT day ORDER BY day) FROM days), "
            "(SELECT array_agg(DISTINCT {owner} ORDER BY {owner}) FROM gone)"
        ).format(rows_of=_rows_of(contract), day=day, rows=rows, owner=owner)
        found = conn.execute(
            query, {**pending.params(), "batch": batch_id, "source": contract.source}
        ).fetchone()
        assert found is not None
        withdrawn, days, owners = int(found[0]), list(found[1] or []), list(found[2] or [])
    superseded = pending.stored - withdrawn
    by = conn.execute(
        "UPDATE ops.batch_replacements SET superseded = %s, withdrawn = %s, processed_at = now() "
        "WHERE batch_id = %s RETURNING requested_by",
        (superseded, withdrawn, batch_id),
    ).fetchone()
    audit.record(
        conn,
        str(by[0]) if by else "unknown",
        "ingest.withdraw",
        f"batch:{batch_id}",
        {
            "source": contract.source,
            "replaces": list(pending.replaces),
            "superseded": superseded,
            "withdrawn": withdrawn,
            "days": [str(d) for d in days],
        },
        channel="dagster",
        affected=withdrawn,
    )
    meters = tuple(owners) if contract.source == "meter_readings" else ()
    return Withdrawal(pending.replaces, superseded, withdrawn, tuple(days), meters)
