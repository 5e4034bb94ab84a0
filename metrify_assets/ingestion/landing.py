"""The landing directory: where the CLI and the REST API drop messages when Kafka is not used.

Layout: `<landing>/<source>/<seq>-<digest>.jsonl`. Each line is one message of contract v1 (a record
object or `{"records": [...]}`), exactly as it would arrive on Kafka. `seq` (microseconds since the
epoch at landing time) orders files and becomes the rows' `record_version`; `digest` (the content's
SHA-256 prefix) makes the batch id content-addressed, so landing the same bytes twice is one batch.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from metrify_assets.contracts import contract_for


@dataclass(frozen=True)
class LandedFile:
    source: str
    path: Path
    seq: int
    digest: str

    @property
    def batch_id(self) -> str:
        return f"landing-{self.source}-{self.digest}"

    @classmethod
    def from_path(cls, path: Path) -> LandedFile:
        seq, _, digest = path.stem.partition("-")
        if not seq.isdigit() or not digest:
            raise ValueError(f"not a landing file name (<seq>-<digest>.jsonl): {path.name}")
        return cls(source=path.parent.name, path=path, seq=int(seq), digest=digest)


def land_lines(landing_dir: Path, source: str, lines: Iterable[str], seq: int | None = None) -> LandedFile:
    """Write message lines as one landing file, atomically (readers never see half a file)."""
    contract_for(source)  # validates the source name
    body = "".join(line.rstrip("\n") + "\n" for line in lines).encode()
    digest = hashlib.sha256(body).hexdigest()[:16]
    seq = time.time_ns() // 1000 if seq is None else seq
    folder = landing_dir / source
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{seq:017d}-{digest}.jsonl"
    tmp = folder / f".{path.name}.tmp{os.getpid()}"
    tmp.write_bytes(body)
    tmp.replace(path)
    return LandedFile(source=source, path=path, seq=seq, digest=digest)


def list_landed(landing_dir: Path, source: str) -> list[LandedFile]:
    """Landing files of one source, oldest first (hidden temp files excluded)."""
    folder = landing_dir / source
    if not folder.is_dir():
        return []
    return sorted(
        (LandedFile.from_path(p) for p in folder.glob("*.jsonl") if not p.name.startswith(".")),
        key=lambda f: (f.seq, f.digest),
    )
