"""Dead letters: the records quarantined at ingest (`ops.quarantine`), as `metrify dlq` lists and
`replay` re-ingests them or `discard` closes them. Reading them is a module of its own so that
`metrify dlq list` does not import the ingest path (pandas, the batch processor) that only a replay runs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

import psycopg

from metrify_assets.ingestion.provenance import Places
from metrify_assets.quality import quarantine
from metrify_assets.quality.quarantine import DISCARDED, reason_code
from metrify_assets.quality.replayable import REPLAYABLE_UNRESOLVED, replayable
from metrify_assets.storage.audit import Caller

# Batches a discard's audit entry names (the count names them all).
AUDIT_BATCHES = 100

_COLUMNS = (
    "batch_id, record_index, source, payload, reasons, record_version, quarantined_at, resolved_at, "
    "resolved_by, replays"
)


@dataclass(frozen=True)
class DeadLetter:
    batch_id: str
    record_index: int
    source: str
    payload: str
    reasons: str
    record_version: int | None
    quarantined_at: datetime
    resolved_at: datetime | None
    resolved_by: str | None
    replays: int
    # Where the record came from (`located`): the file `metrify ingest` was given and the record's place
    # in it (`line 12`, `row 3`), or for a Kafka range the message's offset (`offset 57`); None: not known.
    source_file: str | None = None
    where: str | None = None

    @property
    def replayable(self) -> bool:
        return replayable(self.reasons)

    @property
    def discarded(self) -> bool:
        """Closed by `metrify dlq discard` (no replay will be tried), not by a replay that accepted it."""
        return (self.resolved_by or "").startswith(DISCARDED)


@dataclass(frozen=True)
class Selection:
    """Which dead letters: by source, reason code (prefix, e.g. `malformed:bad_type`), batches (one:
    `dlq --batch`; several: a demo's; an empty tuple selects none, None any), quarantined at or after
    `since`."""

    source: str | None = None
    reason: str | None = None
    batch_ids: tuple[str, ...] | None = None
    include_resolved: bool = False
    since: datetime | None = None

    def where(self) -> tuple[str, dict[str, object]]:
        clauses = ["true"]
        params: dict[str, object] = {}
        if self.source:
            clauses.append("source = %(source)s")
            params["source"] = self.source
        if self.reason:
            clauses.append("(',' || reasons) LIKE %(reason)s")
            params["reason"] = f"%,{self.reason}%"
        if self.batch_ids is not None:
            clauses.append("batch_id = ANY(%(batch_ids)s)")
            params["batch_ids"] = list(self.batch_ids)
        if self.since is not None:
            clauses.append("quarantined_at >= %(since)s")
            params["since"] = self.since
        if not self.include_resolved:
            clauses.append("resolved_at IS NULL")
        return " AND ".join(clauses), params


def select(
    conn: psycopg.Connection, selection: Selection, limit: int | None = None, newest_first: bool = False
) -> list[DeadLetter]:
    """The selected dead letters, oldest first (newest first: what `dlq list` shows, so a new fault is
    not hidden behind old ones)."""
    where, params = selection.where()
    order = "DESC" if newest_first else ""
    sql = (
        f"SELECT {_COLUMNS} FROM ops.quarantine WHERE {where} "
        f"ORDER BY quarantined_at {order}, batch_id {order}, record_index {order}"
    )
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return located(conn, [DeadLetter(*row) for row in conn.execute(sql, params).fetchall()])


def located(conn: psycopg.Connection, letters: Sequence[DeadLetter]) -> list[DeadLetter]:
    """`letters` with where each came from, read from their batches' ledger rows (one query): a file's
    record by the file and its place in it, as `metrify ingest` named the row (`line 12`: the line an
    editor shows), a Kafka record by its offset (its `record_version`; the topic and partition are in
    the batch id). Others (an API request, a simulated file) keep only their record index."""
    batches = sorted({d.batch_id for d in letters})
    if not batches:
        return list(letters)
    origins = {
        str(batch_id): (str(origin), source_file, Places(lines, int(records_in)))
        for batch_id, origin, source_file, lines, records_in in conn.execute(
            "SELECT batch_id, origin, source_file, source_lines, records_in FROM ops.ingest_ledger "
            "WHERE batch_id = ANY(%s)",
            (batches,),
        ).fetchall()
    }
    out = []
    for d in letters:
        origin, source_file, places = origins.get(d.batch_id, ("", None, Places(None, 0)))
        if origin == "kafka" and d.record_version is not None:
            where: str | None = f"offset {d.record_version}"
        else:
            where = places.at(d.record_index)
        out.append(replace(d, source_file=source_file, where=where))
    return out


def reason_counts(conn: psycopg.Connection, selection: Selection) -> list[tuple[str, str, int]]:
    """(source, reason code, records) over the selection, most frequent first: the codes the marts
    count (`reason_code`: no parser detail, no reviewer's note, which cut at its first space made one
    reason per note's first word)."""
    where, params = selection.where()
    counts: Counter[tuple[str, str]] = Counter()
    for source, reason, records in conn.execute(
        "SELECT source, code, count(*) FROM ops.quarantine, "
        f"unnest(string_to_array(reasons, ',')) AS code WHERE {where} GROUP BY 1, 2",
        params,
    ).fetchall():
        counts[str(source), reason_code(str(reason))] += int(records)
    return sorted(((s, r, n) for (s, r), n in counts.items()), key=lambda c: (-c[2], c[0], c[1]))


def totals(conn: psycopg.Connection, selection: Selection) -> tuple[int, int]:
    """(records, replayable) of the selection: its dead letters, and those of them that wait unresolved
    and a replay could accept (not duplicates nor review rejections), which is what `metrify status`
    and the metrify_dlq_records gauge count. `reason_counts` counts a record under each of its
    reasons, so its sum is at least `records`."""
    where, params = selection.where()
    row = conn.execute(
        f"SELECT count(*), count(*) FILTER (WHERE {REPLAYABLE_UNRESOLVED}) FROM ops.quarantine WHERE {where}",
        params,
    ).fetchone()
    return (0, 0) if row is None else (int(row[0]), int(row[1]))


Key = tuple[str, int, str]  # (batch_id, record_index, source) of a dead letter


def keys(conn: psycopg.Connection, selection: Selection) -> list[Key]:
    """The keys of the selected dead letters, without their payloads (a selection to discard may hold
    hundreds of thousands of junk records, each up to a whole message)."""
    where, params = selection.where()
    rows = conn.execute(
        f"SELECT batch_id, record_index, source FROM ops.quarantine WHERE {where} ORDER BY batch_id, record_index",
        params,
    ).fetchall()
    return [(str(b), int(i), str(s)) for b, i, s in rows]


def get(conn: psycopg.Connection, batch_id: str, record_index: int) -> DeadLetter | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM ops.quarantine WHERE batch_id = %s AND record_index = %s",
        (batch_id, record_index),
    ).fetchone()
    return located(conn, [DeadLetter(*row)])[0] if row else None


def discard(
    conn: psycopg.Connection,
    letters: Sequence[Key],
    note: str,
    caller: Caller,
    filters: Mapping[str, object],
) -> Counter[str]:
    """Close dead letters no replay will ever accept (`quarantine.discard`), with one `dlq.discard`
    audit entry per source (its note, the filters that selected them, their batches) in the same
    transaction; commits. Returns the rows discarded per source."""
    with conn.transaction():
        counts = quarantine.discard(conn, [(b, i) for b, i, _ in letters], caller.actor, note)
        for source, n in sorted(counts.items()):
            batches = sorted({b for b, _, s in letters if s == source})
            details = {
                "source": source,
                "note": note,
                "filters": dict(filters),
                "batches": batches[:AUDIT_BATCHES],
                "batch_count": len(batches),
            }
            caller.record(conn, "dlq.discard", f"dead_letters:{source}", details, n)
    conn.commit()
    return counts
