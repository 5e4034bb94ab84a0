"""Offset ranges: what a Kafka run processes, and how a sensor tick plans them. Pure: unit-tested.

A range `[start, end)` of one topic-partition is a batch. Its id (and run key) is
`<topic>-<partition>-<start>-<end>`, so a retried or replayed range rewrites the same lake key,
rows and ledger row. The sensor's cursor is the next start offset per partition, as JSON.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from metrify_assets.ingestion.limits import MAX_BATCH_MESSAGES
from metrify_assets.ingestion.sensors import MAX_RUNS_PER_TICK


@dataclass(frozen=True, order=True)
class OffsetRange:
    topic: str
    partition: int
    start: int
    end: int  # exclusive: the offset committed once the range is done

    @property
    def size(self) -> int:
        """Offsets in the range (records, unless compaction removed some)."""
        return self.end - self.start

    @property
    def batch_id(self) -> str:
        return f"{self.topic}-{self.partition}-{self.start}-{self.end}"

    def run_config(self, source: str) -> dict[str, object]:
        """Run config that points the ingest op at this range (offsets only, never payloads)."""
        config = {"topic": self.topic, "partition": self.partition, "start": self.start, "end": self.end}
        return {"ops": {f"ingest_{source}": {"config": config}}}

    @classmethod
    def parse(cls, batch_id: str) -> OffsetRange:
        """The range of a batch id (topic names may contain '-', the numbers never do)."""
        topic, partition, start, end = batch_id.rsplit("-", 3)
        return cls(topic, int(partition), int(start), int(end))


def load_cursor(cursor: str | None) -> dict[int, int]:
    return {int(p): int(o) for p, o in json.loads(cursor).items()} if cursor else {}


def dump_cursor(next_offsets: Mapping[int, int]) -> str:
    return json.dumps({str(p): o for p, o in sorted(next_offsets.items())})


def plan_ranges(
    topic: str,
    beginning: Mapping[int, int],
    end: Mapping[int, int],
    cursor: Mapping[int, int],
    max_records: int = MAX_BATCH_MESSAGES,
    limit: int = MAX_RUNS_PER_TICK,
) -> tuple[list[OffsetRange], dict[int, int]]:
    """New ranges from each partition's next start offset to its end offset, and the new cursor.

    A partition without a cursor starts at its beginning offset; a cursor below the beginning (the
    records were deleted by retention) moves up to it. Partitions are interleaved so that with
    `limit` reached every partition still makes progress; the cursor covers only what is planned.
    """
    next_offsets = {p: max(cursor.get(p, beginning.get(p, 0)), beginning.get(p, 0)) for p in end}
    planned: list[OffsetRange] = []
    progress = True
    while progress and len(planned) < limit:
        progress = False
        for partition in sorted(end):
            start = next_offsets[partition]
            if start >= end[partition] or len(planned) >= limit:
                continue
            stop = min(end[partition], start + max_records)
            planned.append(OffsetRange(topic, partition, start, stop))
            next_offsets[partition] = stop
            progress = True
    return planned, {**dict(cursor), **next_offsets}


# A part shorter than this would cost more in a run's fixed work (Dagster's bookkeeping, the GX run,
# the ledger) than it saves in idle workers.
MIN_PART_RECORDS = 10_000


def balance_ranges(
    ranges: Sequence[OffsetRange], workers: int, min_part: int | None = None
) -> list[OffsetRange]:
    """The ranges for `workers` runs at a time: longest first (ties in the planned order, which
    interleaves partitions), and the ranges of a last round that would leave workers idle cut so that
    it fills them: each idle worker's place goes to the range whose parts are then the longest, as
    long as no part falls under `min_part` offsets (default `MIN_PART_RECORDS`).

    Three partitions on two workers: two ranges, then the third's two halves side by side. The cut
    parts are ordinary ranges (their own batch ids), as idempotent as any other."""
    if workers <= 1:
        return list(ranges)
    smallest = max(1, MIN_PART_RECORDS if min_part is None else min_part)
    ordered = sorted(ranges, key=lambda r: -r.size)  # stable: equal lengths keep their order
    tail = len(ordered) % workers
    if not tail:
        return ordered
    last = ordered[-tail:]
    parts = [1] * tail
    for _ in range(workers - tail):
        cuttable = [i for i, r in enumerate(last) if r.size // (parts[i] + 1) >= smallest]
        if not cuttable:
            break
        parts[max(cuttable, key=lambda i: last[i].size / parts[i])] += 1
    balanced = ordered[:-tail]
    for rng, n in zip(last, parts, strict=True):
        bounds = [rng.start + rng.size * i // n for i in range(n + 1)]
        balanced += [OffsetRange(rng.topic, rng.partition, a, b) for a, b in itertools.pairwise(bounds)]
    return balanced
