"""Whether `metrify ingest` landed the same content before. A landing file's name holds the digest of
its bytes and its batch id is content-addressed, so landing the same lines again is the same batch,
which `metrify run` finds in the ledger and leaves ("nothing to do"). Saying so at ingest time, and
not landing the file twice, answers what a trial had to guess from a run that did nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psycopg

from metrify_assets.ingestion.landing import LandedFile, list_landed
from metrify_assets.ingestion.limits import MAX_BATCH_MESSAGES


def digest(lines: Sequence[str]) -> str:
    """The digest `land_lines` names a landing file of `lines` by (and its batch id with)."""
    body = "".join(line.rstrip("\n") + "\n" for line in lines).encode()
    return hashlib.sha256(body).hexdigest()[:16]


@dataclass(frozen=True)
class Earlier:
    """A landing file of the same content, and when the ledger recorded its batch (None: not yet, or
    the ledger could not be read, and `unread` says why)."""

    landed: LandedFile
    ingested_at: datetime | None = None
    unread: str = ""


def landed_before(
    landing_dir: Path,
    source: str,
    lines: Sequence[str],
    connect: Callable[[], AbstractContextManager[psycopg.Connection]],
    per_file: int = MAX_BATCH_MESSAGES,
) -> list[Earlier] | None:
    """For each file `land_batches` would land `lines` as, the landing file that already holds it; None
    unless every one has one (a file partly new is landed whole: its known parts are the same batches,
    ingested once). The directory's names are read, and the ledger only for a file found."""
    folder = list_landed(landing_dir, source)
    by_digest: dict[str, LandedFile] = {}
    for landed in folder:  # oldest first: the first landing of each content
        by_digest.setdefault(landed.digest, landed)
    found = [
        by_digest.get(digest(lines[start : start + per_file])) for start in range(0, len(lines), per_file)
    ]
    if not found or any(f is None for f in found):
        return None
    twins = [f for f in found if f is not None]
    try:
        with connect() as conn:
            return [Earlier(f, _recorded_at(conn, f.batch_id)) for f in twins]
    except psycopg.Error as err:
        return [Earlier(f, unread=str(err).strip().splitlines()[0]) for f in twins]


def _recorded_at(conn: psycopg.Connection, batch_id: str) -> datetime | None:
    row = conn.execute(
        "SELECT coalesce(recorded_at, processed_at) FROM ops.ingest_ledger WHERE batch_id = %s", (batch_id,)
    ).fetchone()
    return None if row is None else row[0]
