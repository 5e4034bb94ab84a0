"""The one writer of `ops.quarantine`: rejected records kept verbatim with every reason.

Ingestion quarantines what the record rules reject or cannot decode; review quarantines what a
reviewer rejects. Both go through `quarantine`, keyed by (batch_id, record_index), so a replayed
batch or a repeated decision rewrites the same row (keeping when it was first quarantined) instead of
adding one. A dead-letter replay (`ingestion/replay.py`) never adds rows either: it resolves the rows
whose records it accepted and refreshes the reasons of those it still rejects. `metrify dlq discard`
resolves rows no replay will ever accept (`discard`): kept for the quarantine's retention, no longer
waiting for a fix. A row is kept with its record's natural key (`record_key`, as the review queue's),
so a later batch that stores an accepted record for that key resolves it as superseded (`supersede`):
a corrected file settles the rows of the one it corrects, and a resend does not count its bad rows twice.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg
from psycopg import sql

from metrify_assets.contracts import MAX_TEXT_LENGTH, SourceContract, contract_for
from metrify_assets.storage.writes import staged

# A reviewer's rejection: `review_rejected:<their note>` (quality/review.py).
REVIEW_REJECTED = "review_rejected"
# `resolved_by` of a discarded dead letter: `discarded by <who>: <why>` (a replay's is its batch id).
DISCARDED = "discarded by "
# `resolved_by` of a dead letter a later batch stored an accepted record for: `superseded by <batch>`.
SUPERSEDED = "superseded by "


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


def record_key(source: str, payload: str) -> str | None:
    """The natural key of a quarantined record as `ingestion.batch._record_key` writes a stored one's
    (`MTR-1|2026-11-30T02:15:00Z`: the time in UTC), from its payload; None when the payload has no
    such key (not a JSON object, a key field missing, a time without an offset or not a time, a text
    no stored record could have: with a NUL character or longer than `MAX_TEXT_LENGTH`)."""
    contract = contract_for(source)
    try:
        record = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    parts = []
    for name in contract.key:
        value = record.get(name)
        if name == contract.time_field:
            try:
                stamp = datetime.fromisoformat(value) if isinstance(value, str) else None
            except ValueError:
                return None
            if stamp is None or stamp.tzinfo is None:
                return None
            value = stamp.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        elif value is None or isinstance(value, dict | list):
            return None
        text = str(value)
        if "\x00" in text or len(text) > MAX_TEXT_LENGTH:  # no stored record has such a key: none
            return None  # (and PostgreSQL could not hold it, nor index a long one)
        parts.append(text)
    return "|".join(parts)


def quarantine(conn: psycopg.Connection, source: str, batch_id: str, rows: Iterable[QuarantineRow]) -> int:
    """Record rejected records of one batch, each with its natural key; returns how many."""
    data = [
        (
            batch_id,
            r.record_index,
            source,
            r.payload,
            r.reasons,
            r.record_version,
            record_key(source, r.payload),
        )
        for r in rows
    ]
    if not data:
        return 0
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO ops.quarantine (batch_id, record_index, source, payload, reasons, record_version, "
            "record_key) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (batch_id, record_index) DO UPDATE "
            "SET payload = excluded.payload, reasons = excluded.reasons, record_key = excluded.record_key, "
            "record_version = coalesce(excluded.record_version, ops.quarantine.record_version)",
            data,
        )
    return len(data)


def supersede(conn: psycopg.Connection, contract: SourceContract, batch_id: str) -> int:
    """Resolve the unresolved rows of other batches whose key `batch_id` just stored an accepted record
    for, as `superseded by <batch_id>`: the reading they stood for is there now, so no replay is owed
    (those no replay could accept, duplicates and review rejections, stay as they were). A row of a
    newer version than the one stored stays (an old batch run again does not settle a later
    correction's rejects). Resolution is not deletion: each batch keeps `records_in = accepted +
    quarantined`. The stored records are read from the upsert's staging table (`writes.staged`,
    still there in the batch's transaction) and keyed in SQL: building and sending every key from
    Python was a sixth of a Kafka run's CPU. None of it when no keyed row waits (one index probe)."""
    # Imported here: replayable imports review, which imports this module.
    from metrify_assets.quality.replayable import NOT_REPLAYABLE_PATTERN

    if not _keyed_waiting(conn, contract.source):
        return 0
    row = conn.execute(
        sql.SQL(
            "WITH done AS (UPDATE ops.quarantine AS q SET resolved_at = now(), resolved_by = %s "
            "FROM (SELECT {key} AS record_key, s.record_version FROM {staged} AS s) AS s "
            "WHERE q.source = %s AND q.record_key = s.record_key AND q.resolved_at IS NULL "
            "AND q.reasons !~ %s "
            "AND q.batch_id <> %s AND (q.record_version IS NULL OR q.record_version <= s.record_version) "
            "RETURNING 1) SELECT count(*) FROM done"
        ).format(key=record_key_sql(contract, "s"), staged=staged(contract)),
        (f"{SUPERSEDED}{batch_id}", contract.source, NOT_REPLAYABLE_PATTERN, batch_id),
    ).fetchone()
    return 0 if row is None else int(row[0])


def record_key_sql(contract: SourceContract, alias: str) -> sql.Composable:
    """`record_key` in SQL, of the row `alias` of a relation with the contract's columns: each key
    field as text, the time in UTC to the second, joined by `|`."""
    parts = [
        sql.SQL("to_char({c} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')").format(
            c=sql.Identifier(alias, name)
        )
        if name == contract.time_field
        else sql.SQL("{c}::text").format(c=sql.Identifier(alias, name))
        for name in contract.key
    ]
    return sql.SQL(" || '|' || ").join(parts)


def _keyed_waiting(conn: psycopg.Connection, source: str) -> bool:
    """Whether any unresolved row of `source` has a key: one index probe, so a clean feed's batches
    skip `supersede`'s join."""
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM ops.quarantine WHERE source = %s AND record_key IS NOT NULL "
        "AND resolved_at IS NULL)",
        (source,),
    ).fetchone()
    return bool(row and row[0])


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
