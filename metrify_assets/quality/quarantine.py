"""The one writer of `ops.quarantine`: rejected records kept verbatim with every reason.

Ingestion quarantines what the record rules reject or cannot decode; review quarantines what a
reviewer rejects. Both go through `quarantine`, keyed by (batch_id, record_index), so a replayed
batch or a repeated decision rewrites the same row (keeping when it was first quarantined) instead of
adding one. A dead-letter replay (`ingestion/replay.py`) never adds rows either: it resolves the rows
whose records it accepted and refreshes the reasons of those it still rejects. `metrify dlq discard`
resolves rows no replay will ever accept (`discard`): kept for the quarantine's retention, no longer
waiting for a fix.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import psycopg

# A reviewer's rejection: `review_rejected:<their note>` (quality/review.py).
REVIEW_REJECTED = "review_rejected"
# `resolved_by` of a discarded dead letter: `discarded by <who>: <why>` (a replay's is its batch id).
DISCARDED = "discarded by "


def reason_code(reason: str) -> str:
    """A reason without the free text some carry, what counts and groups go by: a reviewer's note
    (`review_rejected:<note>`) or a parser's detail (`malformed:invalid_json (<detail>)`). Every other
    reason is a code already, `:`-qualified ones included (`malformed:missing_field:meter_id`). dbt's
    `reason_code` macro is the same rule in SQL."""
    reason = reason.strip()
    if reason.startswith(f"{REVIEW_REJECTED}:"):
        return REVIEW_REJECTED
    return reason.split(" (", 1)[0]


@dataclass(frozen=True)
class QuarantineRow:
    record_index: int
    payload: str
    reasons: str  # comma-separated reasons (`reason_code` gives each one's code)
    record_version: int | None = None  # the version its batch gave it (Kafka offset, landing seq)


Origin = tuple[str, int]  # (batch_id, record_index) of a quarantine row


def quarantine(conn: psycopg.Connection, source: str, batch_id: str, rows: Iterable[QuarantineRow]) -> int:
    """Record rejected records of one batch; returns how many."""
    data = [(batch_id, r.record_index, source, r.payload, r.reasons, r.record_version) for r in rows]
    if not data:
        return 0
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO ops.quarantine (batch_id, record_index, source, payload, reasons, record_version) "
            "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (batch_id, record_index) DO UPDATE "
            "SET payload = excluded.payload, reasons = excluded.reasons, "
            "record_version = coalesce(excluded.record_version, ops.quarantine.record_version)",
            data,
        )
    return len(data)


def payload(conn: psycopg.Connection, batch_id: str, record_index: int) -> str | None:
    """The record as quarantined (its payload), or None when the record is not in quarantine."""
    row = conn.execute(
        "SELECT payload FROM ops.quarantine WHERE batch_id = %s AND record_index = %s",
        (batch_id, record_index),
    ).fetchone()
    return None if row is None else str(row[0])


def resolve(conn: psycopg.Connection, origins: Sequence[Origin], replay_batch_id: str) -> int:
    """Mark the rows of records a replay accepted as resolved by that replay batch."""
    with conn.cursor() as cur:
        cur.executemany(
            "UPDATE ops.quarantine SET resolved_at = coalesce(resolved_at, now()), resolved_by = %s, "
            "replays = replays + 1 WHERE batch_id = %s AND record_index = %s",
            [(replay_batch_id, b, i) for b, i in origins],
        )
    return len(origins)


def discard(conn: psycopg.Connection, origins: Sequence[Origin], by: str, note: str) -> Counter[str]:
    """Resolve the rows of `origins` as discarded by `by` for `note`: like a replay's resolution, so
    every count of dead letters waiting (`resolved_at IS NULL`: the `metrify_dlq_records` gauge,
    `metrify status`, `dlq list`, `dlq replay`) leaves them out, but not replayed (`replays` unchanged).
    A row resolved meanwhile (a replay accepted it) keeps its resolution. Returns the rows discarded
    per source; one statement, whatever the number of rows."""
    counts: Counter[str] = Counter()
    if not origins:
        return counts
    rows = conn.execute(
        "WITH done AS (UPDATE ops.quarantine AS q SET resolved_at = now(), resolved_by = %s "
        "FROM unnest(%s::text[], %s::integer[]) AS d(batch_id, record_index) "
        "WHERE q.batch_id = d.batch_id AND q.record_index = d.record_index AND q.resolved_at IS NULL "
        "RETURNING q.source) SELECT source, count(*) FROM done GROUP BY source",
        (f"{DISCARDED}{by}: {note}", [b for b, _ in origins], [i for _, i in origins]),
    ).fetchall()
    for source, n in rows:
        counts[str(source)] += int(n)
    return counts


def requarantine(conn: psycopg.Connection, rows: Sequence[tuple[Origin, str]]) -> int:
    """Records a replay still rejects: their original rows get the replay's reasons, and count it."""
    with conn.cursor() as cur:
        cur.executemany(
            "UPDATE ops.quarantine SET reasons = %s, replays = replays + 1 "
            "WHERE batch_id = %s AND record_index = %s",
            [(reasons, b, i) for (b, i), reasons in rows],
        )
    return len(rows)
