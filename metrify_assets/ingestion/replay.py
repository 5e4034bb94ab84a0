"""Dead-letter replay: quarantined records back through the ingest path, after a fix.

A record is quarantined (and, from Kafka, dead-lettered) with its payload, reasons and version
(`dead_letters.py` selects them). Once the cause is fixed (a rule corrected, a contract widened, a
registry entry added), `replay` runs the selected records through `process_batch` as one batch per
source and chunk. Records it accepts are upserted under their original version (so a replay never
overwrites a newer reading) and their quarantine rows are resolved; records it still rejects keep
their rows with the new reasons. No quarantine row is added, and replaying again changes nothing more.

Not replayable: duplicates (the first copy is already stored; a replayed conflict would replace it)
and records a reviewer rejected (a decision, not an error).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pandas as pd
import psycopg

from metrify_assets.contracts import CONTRACTS
from metrify_assets.ingestion.batch import BatchSpec, process_batch, refresh_cache
from metrify_assets.ingestion.dead_letters import DeadLetter
from metrify_assets.resources.cache import Cache
from metrify_assets.resources.lake import Lake
from metrify_assets.resources.quality import DEFAULT_ALERT_THRESHOLD
from metrify_assets.storage.audit import Caller

REPLAY_CHUNK = 5_000  # records per replay batch: one transaction each


@dataclass(frozen=True)
class ReplayResult:
    batch_id: str
    source: str
    replayed: int
    accepted: int
    still_quarantined: int


def replay_batch_id(letters: Sequence[DeadLetter]) -> str:
    """Deterministic in the records replayed: the same selection replayed again is the same batch."""
    digest = hashlib.sha256()
    for letter in sorted(letters, key=lambda d: (d.batch_id, d.record_index)):
        digest.update(f"{letter.batch_id}\x1f{letter.record_index}\x1e".encode())
    return f"replay-{letters[0].source}-{digest.hexdigest()[:16]}"


def replay(
    conn: psycopg.Connection,
    lake: Lake,
    letters: Sequence[DeadLetter],
    now: pd.Timestamp,
    alert_threshold: float = DEFAULT_ALERT_THRESHOLD,
    cache: Cache | None = None,
    caller: Caller | None = None,
) -> ReplayResult:
    """Replay dead letters of one source as one batch, committed as one transaction (with its
    `dlq.replay` audit entry when a `caller` is given); then the cache hears of the readings it stored."""
    sources = {d.source for d in letters}
    if len(sources) != 1:
        raise ValueError(f"a replay batch holds one source, got {sorted(sources)}")
    blocked = [d for d in letters if not d.replayable]
    if blocked:
        raise ValueError(
            f"{len(blocked)} dead letters are not replayable (duplicates, reviewer rejections), e.g. "
            f"{blocked[0].batch_id}#{blocked[0].record_index}: {blocked[0].reasons}"
        )
    contract = CONTRACTS[sources.pop()]
    batch_id = replay_batch_id(letters)
    # Within a batch the first copy of a key wins: the newest version goes first.
    letters = sorted(letters, key=lambda d: -(d.record_version or 0))
    origins = sorted({d.batch_id for d in letters})
    spec = BatchSpec(
        contract,
        batch_id,
        "replay",
        f"{len(letters)} dead letters of {len(origins)} batches ({origins[0]}{', ...' if len(origins) > 1 else ''})",
        now.date(),
    )
    # One transaction around the batch and its audit entry: on an idle connection the batch's own
    # transaction block would otherwise commit by itself, before the entry is written.
    with conn.transaction():
        result = process_batch(
            spec,
            [d.payload for d in letters],
            [d.record_version or 0 for d in letters],  # no version (quarantined before 0003): the oldest
            lake,
            conn,
            now=now,
            alert_threshold=alert_threshold,
            replay_of=[(d.batch_id, d.record_index) for d in letters],
            backfill=True,  # their timeliness was scored when they first arrived
        )
        ledger = result.ledger
        if caller is not None:
            details = {
                "source": contract.source,
                "replayed": ledger.records_in,
                "still_quarantined": ledger.quarantined,
                "from_batches": origins,
            }
            caller.record(conn, "dlq.replay", f"batch:{batch_id}", details, ledger.accepted)
    conn.commit()
    refresh_cache(cache, conn, result)
    return ReplayResult(batch_id, contract.source, ledger.records_in, ledger.accepted, ledger.quarantined)


def chunks(letters: Sequence[DeadLetter], size: int = REPLAY_CHUNK) -> Iterator[list[DeadLetter]]:
    """Replay batches: per source, at most `size` records each."""
    for source in sorted({d.source for d in letters}):
        of_source = [d for d in letters if d.source == source]
        for start in range(0, len(of_source), size):
            yield of_source[start : start + size]
