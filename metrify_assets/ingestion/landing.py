"""The landing directory: where the CLI and the REST API drop messages when Kafka is not used.

Layout: `<landing>/<source>/<seq>-<digest>[.backfill].jsonl`. Each line is one message of contract v1
(a record object or `{"records": [...]}`), exactly as it would arrive on Kafka. `seq` (microseconds
since the epoch at landing time) orders files and becomes the rows' `record_version`; `digest` (the
content's SHA-256 prefix) makes the batch id content-addressed, so landing the same bytes twice is one
batch. `.backfill` declares the file history (an import, a re-delivery): its records are not scored
for timeliness, since nothing that old was expected live.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from metrify_assets.contracts import contract_for
from metrify_assets.ingestion.limits import MAX_BATCH_MESSAGES
from metrify_assets.ingestion.provenance import Origin, origin_path, runs, write_origin

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LandedFile:
    source: str
    path: Path
    seq: int
    digest: str
    backfill: bool = False

    @property
    def batch_id(self) -> str:
        return f"landing-{self.source}-{self.digest}"

    @property
    def landed_on(self) -> date:
        """The UTC day of `seq`: the batch's arrival day (its raw batch's `dt=`), which for the files
        `metrify simulate` writes is the simulated day."""
        return datetime.fromtimestamp(self.seq / 1_000_000, UTC).date()

    @property
    def origin_path(self) -> Path:
        """The file beside it that says what `metrify ingest` read it from (`provenance.py`), if any."""
        return origin_path(self.path)

    @classmethod
    def from_path(cls, path: Path) -> LandedFile:
        stem = path.stem.removesuffix(BACKFILL_SUFFIX)
        seq, _, digest = stem.partition("-")
        if not seq.isdigit() or not digest or "." in digest:
            raise ValueError(f"not a landing file name (<seq>-<digest>[.backfill].jsonl): {path.name}")
        backfill = stem != path.stem
        return cls(source=path.parent.name, path=path, seq=int(seq), digest=digest, backfill=backfill)


BACKFILL_SUFFIX = ".backfill"


def land_lines(
    landing_dir: Path,
    source: str,
    lines: Iterable[str],
    seq: int | None = None,
    backfill: bool = False,
    origin: Origin | None = None,
) -> LandedFile:
    """Write message lines as one landing file, atomically (readers never see half a file);
    `backfill` declares them history (not scored for timeliness); `origin`, the file they were read
    from, is written beside it first, so a sensor that sees the landing file sees its origin too."""
    contract_for(source)  # validates the source name
    body = _body(lines)
    digest = hashlib.sha256(body).hexdigest()[:16]
    seq = time.time_ns() // 1000 if seq is None else seq
    folder = landing_dir / source
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{seq:017d}-{digest}{BACKFILL_SUFFIX if backfill else ''}.jsonl"
    if origin is not None:
        write_origin(path, origin)
    tmp = folder / f".{path.name}.tmp{os.getpid()}"
    tmp.write_bytes(body)
    tmp.replace(path)
    return LandedFile(source=source, path=path, seq=seq, digest=digest, backfill=backfill)


def land_batches(
    landing_dir: Path,
    source: str,
    lines: Sequence[str],
    seq: int | None = None,
    backfill: bool = False,
    per_file: int = MAX_BATCH_MESSAGES,
    source_file: str | None = None,
    places: Sequence[str] = (),
) -> list[LandedFile]:
    """Land `lines` as files of at most `per_file` messages, each file one batch (one run), as a Kafka
    range is at most as long: a large import does not make one run that holds it all in memory. The
    files' seqs count up from `seq` (default: now) in the lines' order, so a later file's records are
    the later versions, as a later Kafka offset's are. `source_file` names the file the lines were
    read from, and `places` (one per line, when known) where each was in it: each landing file's
    origin (`provenance.py`)."""
    first = time.time_ns() // 1000 if seq is None else seq
    known = len(places) == len(lines)
    return [
        land_lines(
            landing_dir,
            source,
            part,
            seq=first + n,
            backfill=backfill,
            origin=None
            if source_file is None
            else Origin(
                source_file, runs(places[n * per_file : n * per_file + len(part)]) if known else None
            ),
        )
        for n, part in enumerate(_parts(lines, per_file))
    ]


def planned_batch_ids(source: str, lines: Sequence[str], per_file: int = MAX_BATCH_MESSAGES) -> list[str]:
    """The batch ids `land_batches` will land `lines` as, in order, before landing them (content-addressed:
    `metrify ingest --replaces` records what the last one replaces before the sensor can see it)."""
    return [
        LandedFile(source, Path(), 0, hashlib.sha256(_body(part)).hexdigest()[:16]).batch_id
        for part in _parts(lines, per_file)
    ]


def _parts(lines: Sequence[str], per_file: int) -> list[Sequence[str]]:
    return [lines[start : start + per_file] for start in range(0, len(lines), per_file)]


def _body(lines: Iterable[str]) -> bytes:
    """A landing file's bytes: one message a line."""
    return "".join(line.rstrip("\n") + "\n" for line in lines).encode()


def landed_messages(body: bytes) -> list[bytes]:
    """A landing file's messages: one per `\n`-ended line, as bytes (a line that is not UTF-8 is
    quarantined as malformed, not a failed run). Only `\n` ends a line (and `\r\n`): JSON may hold
    U+2028 or a form feed in a string, which `str.splitlines` would cut the record at."""
    lines = body.split(b"\n")
    if lines[-1] == b"":
        lines.pop()  # the file's last newline ends a line; it does not start one
    return [line[:-1] if line.endswith(b"\r") else line for line in lines]


def list_landed(landing_dir: Path, source: str) -> list[LandedFile]:
    """Landing files of one source, oldest first (hidden temp files excluded).

    A file someone copied in under another name is left where it is, with a warning, instead of
    stopping every file after it: land it with `metrify ingest`, which names it."""
    folder = landing_dir / source
    if not folder.is_dir():
        return []
    landed = []
    for path in folder.glob("*.jsonl"):
        if path.name.startswith("."):
            continue
        try:
            landed.append(LandedFile.from_path(path))
        except ValueError as err:
            log.warning("skipped %s: %s; land it with `metrify ingest %s`", path, err, source)
    return sorted(landed, key=lambda f: (f.seq, f.digest))
