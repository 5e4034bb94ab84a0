"""The one writer of `ops.quarantine`: rejected records kept verbatim with every reason.

Ingestion quarantines what the record rules reject or cannot decode; review quarantines what a
reviewer rejects. Both go through `quarantine`, keyed by (batch_id, record_index), so a replayed
batch or a repeated decision rewrites the same row (keeping when it was first quarantined) instead of
adding one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import psycopg


@dataclass(frozen=True)
class QuarantineRow:
    record_index: int
    payload: str
    reasons: str  # comma-separated reason codes (details after `:`)


def quarantine(conn: psycopg.Connection, source: str, batch_id: str, rows: Iterable[QuarantineRow]) -> int:
    """Record rejected records of one batch; returns how many."""
    data = [(batch_id, r.record_index, source, r.payload, r.reasons) for r in rows]
    if not data:
        return 0
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO ops.quarantine (batch_id, record_index, source, payload, reasons) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (batch_id, record_index) DO UPDATE "
            "SET payload = excluded.payload, reasons = excluded.reasons",
            data,
        )
    return len(data)
