"""Landing files past `landing_days`: deleted once their batch is in the ledger and its raw copy in the lake.

A landing file (`metrify ingest`, `metrify simulate`, the API without Kafka) is read once; the ingest
run keeps its verbatim copy as the batch's raw object in the lake (`ops.ingest_ledger.raw_key`), which
replays and restores read. Left in place, files pile up for good, and every landing sensor tick lists
them. A file is deleted only when all of these hold, else kept with the reason:
- it landed `landing_days` or more days ago (its `seq` is the landing time);
- the ledger holds its batch: a file not ingested yet (or whose runs keep failing) stays for the
  sensor and `metrify run`;
- its raw copy is in the lake: the file is not the only copy;
- no legal hold on `raw` covers its landing day, nor one on its source that starts on or before it
  (a file holds data of its landing day and earlier, as a raw batch does).
Work is proportional to the files in the landing directory, not to the ledger's history.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg

from metrify_assets.ingestion.landing import LandedFile, list_landed
from metrify_assets.lifecycle import holds, state
from metrify_assets.lifecycle.tiers import Outcome
from metrify_assets.resources.lake import Lake

DATASET = "landing"


def landed_day(landed: LandedFile) -> date:
    """The UTC day a file landed (its `seq`: microseconds since the epoch at landing time)."""
    return datetime.fromtimestamp(landed.seq / 1_000_000, UTC).date()


def expire_landing_files(
    conn: psycopg.Connection,
    lake: Lake,
    landing_dir: Path,
    sources: tuple[str, ...],
    today: date,
    days: int,
    dry_run: bool,
    run_id: str | None,
) -> list[Outcome]:
    """Each source's landing files of days at least `days` old: one outcome per source and landing
    day for the files deleted (or, in a dry run, that would be), one per kept reason."""
    cutoff = today - timedelta(days=days - 1)  # files that landed before it are `days` or more old
    outcomes: list[Outcome] = []
    for source in sources:
        due = [f for f in list_landed(landing_dir, source) if landed_day(f) < cutoff]
        if not due:
            continue
        raw_keys: dict[str, str] = dict(
            conn.execute(
                "SELECT batch_id, raw_key FROM ops.ingest_ledger WHERE batch_id = ANY(%s)",
                ([f.batch_id for f in due],),
            ).fetchall()
        )
        by_day: dict[tuple[date, str, str], list[LandedFile]] = defaultdict(list)
        for landed in due:
            action, reason = _verdict(conn, lake, landed, raw_keys.get(landed.batch_id))
            by_day[(landed_day(landed), action, reason)].append(landed)
        for (day, action, reason), files in sorted(by_day.items()):
            outcomes.append(_settle(conn, source, day, action, reason, files, dry_run, run_id))
    return outcomes


EXPIRE = "expire"


def _verdict(
    conn: psycopg.Connection, lake: Lake, landed: LandedFile, raw_key: str | None
) -> tuple[str, str]:
    """`EXPIRE`, or the action that keeps the file (`held`, `kept`) with the reason."""
    if raw_key is None:
        return "kept", "not ingested yet: the landing sensor or `metrify run` takes it"
    day = landed_day(landed)
    held = holds.covering(conn, "raw", day, day) + holds.covering(conn, landed.source, date.min, day)
    if held:
        return "held", f"legal hold {', '.join(sorted({str(h.hold_id) for h in held}))}"
    if lake.head(raw_key) is None:
        return "kept", f"its raw batch {raw_key} is not in the lake: the file is the only copy"
    return EXPIRE, ""


def _settle(
    conn: psycopg.Connection,
    source: str,
    day: date,
    action: str,
    reason: str,
    files: list[LandedFile],
    dry_run: bool,
    run_id: str | None,
) -> Outcome:
    where = f"{source}/: {len(files)} files"
    if action != EXPIRE:
        detail = f"{where} kept: {reason}"
        state.log(conn, DATASET, day, action, detail, len(files), None, dry_run, run_id)
        conn.commit()
        return Outcome(DATASET, day, action, detail, len(files))
    size = 0
    for landed in files:
        try:
            size += landed.path.stat().st_size
            if not dry_run:
                landed.path.unlink()
        except FileNotFoundError:
            continue  # gone meanwhile (by hand, or another pass): nothing left to delete
    state.log(conn, DATASET, day, "expired", where, len(files), size, dry_run, run_id)
    conn.commit()
    return Outcome(DATASET, day, "would expire" if dry_run else "expired", where, len(files), size)
