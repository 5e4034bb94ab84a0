"""Landing files past `landing_days`: deleted once their batch is in the ledger and its raw copy in the lake.

A landing file (`metrify ingest`, `metrify simulate`, the API without Kafka) is read once; the ingest
run keeps its verbatim copy as the batch's raw object in the lake (`ops.ingest_ledger.raw_key`), which
replays and restores read. Left in place, files pile up for good, and every landing sensor tick lists
them. A file is deleted only when all of these hold, else kept with the reason:
- its arrival day (`LandedFile.landed_on`, the day its raw batch is filed under) is `landing_days`
  or more days ago;
- the ledger holds its batch: a file not ingested yet (or whose runs keep failing) stays for the
  sensor and `metrify run`;
- its raw copy is in the lake: the file is not the only copy;
- no legal hold keeps the source's raw input of that day (`holds.covering_raw`; a meter's hold keeps
  only meter readings' files).
Work is proportional to the due files: one ledger query per source, one hold check and one lake
listing per source and day, none per file.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path

import psycopg

from metrify_assets.ingestion.landing import LandedFile, list_landed
from metrify_assets.lifecycle import holds, state
from metrify_assets.lifecycle.tiers import Outcome, holding
from metrify_assets.resources.lake import Lake

DATASET = "landing"
EXPIRE = "expire"  # a file's verdict when it goes; otherwise the action that keeps it (held, kept)


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
    """Each source's landing files of days at least `days` old: one outcome per source, day and
    verdict (the files deleted, or in a dry run that would be; those kept, with the reason)."""
    cutoff = today - timedelta(days=days - 1)  # files that arrived before it are `days` or more old
    outcomes: list[Outcome] = []
    for source in sources:
        by_day: dict[date, list[LandedFile]] = defaultdict(list)
        for landed in list_landed(landing_dir, source):
            if landed.landed_on < cutoff:
                by_day[landed.landed_on].append(landed)
        if not by_day:
            continue
        raw_keys: dict[str, str] = dict(
            conn.execute(
                "SELECT batch_id, raw_key FROM ops.ingest_ledger WHERE batch_id = ANY(%s)",
                ([f.batch_id for files in by_day.values() for f in files],),
            ).fetchall()
        )
        for day, files in sorted(by_day.items()):
            verdicts: dict[tuple[str, str], list[LandedFile]] = defaultdict(list)
            held = holding(holds.covering_raw(conn, source, day, day), source)
            in_lake = _listed(lake, {raw_keys[f.batch_id] for f in files if f.batch_id in raw_keys})
            for landed in files:
                verdicts[_verdict(raw_keys.get(landed.batch_id), held, in_lake)].append(landed)
            for (action, reason), chosen in sorted(verdicts.items()):
                outcomes.append(_settle(conn, source, day, action, reason, chosen, dry_run, run_id))
    return outcomes


def _listed(lake: Lake, keys: set[str]) -> set[str]:
    """Which of `keys` the lake holds, listing each of their folders once."""
    folders = {key.rsplit("/", 1)[0] + "/" for key in keys}
    return {key for folder in folders for key in lake.list(folder)} & keys


def _verdict(raw_key: str | None, held: list[holds.Hold], in_lake: set[str]) -> tuple[str, str]:
    """`EXPIRE`, or the action that keeps the file (`held`, `kept`) with the reason."""
    if raw_key is None:
        return "kept", "not ingested yet: the landing sensor or `metrify run` takes it"
    if held:
        return "held", f"legal hold {', '.join(sorted({str(h.hold_id) for h in held}))}"
    if raw_key not in in_lake:
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
                landed.origin_path.unlink(missing_ok=True)  # its ledger row keeps what it said
        except FileNotFoundError:
            continue  # gone meanwhile (by hand, or another pass): nothing left to delete
    state.log(conn, DATASET, day, "expired", where, len(files), size, dry_run, run_id)
    conn.commit()
    return Outcome(DATASET, day, "would expire" if dry_run else "expired", where, len(files), size)
