"""Record, batch and stage-time counters from `ops.ingest_ledger`, one row per batch.

The counters are the ledger's sums, as each batch was ingested: a reviewer's later rejection moves
one record from `accepted` (and `flagged`) to `quarantined` in the ledger row, and is added back here
(the batch's rejected review items), so the counters never go down and received = accepted +
quarantined holds for them as for every ledger row. They count what arrived: a dead-letter replay
(origin `replay`) brings in no new record, so its rows go to `metrify_records_replayed_total`
instead, by outcome (accepted, or quarantined again), and to `metrify_batches_total`, never to the
four record counters (a replay of 1,000 still-malformed letters would otherwise read as 1,000
records received and quarantined, and raise the quarantine-rate alerts). Read incrementally (`WindowedTally`) by when each
row was first recorded (`recorded_at`, migration 0015; `processed_at` moves when a batch is recorded
again): the first scrape sums the settled rows (`seed_ledger`, without the scrape's statement
timeout: its cost grows with the ledger), later ones read only the rows of the lookback window.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any

import psycopg
from prometheus_client.core import Metric

from metrify_assets.observability.catalogue import BATCH_STAGES, STAGE_BUCKETS
from metrify_assets.observability.families import add_histogram, counter, histogram
from metrify_assets.observability.tally import Contribution, WindowedTally

log = logging.getLogger(__name__)

RECORD_COUNTERS = ("received", "accepted", "quarantined", "flagged")
REPLAY = "replay"  # the ledger origin of a dead-letter replay's batches
REPLAYED = "metrify_records_replayed_total"
REPLAY_OUTCOMES = ("accepted", "quarantined")


def _records(source: str, origin: str, counts: tuple[float, ...]) -> Iterator[tuple[Any, float]]:
    """The record counters' series one ledger row (or a group of rows of one origin) adds to:
    `received`, `accepted`, `quarantined`, `flagged`, or, for a replay, `replayed` by outcome."""
    if origin == REPLAY:
        _, accepted, quarantined, _ = counts
        yield ("replayed", source, "accepted"), float(accepted)
        yield ("replayed", source, "quarantined"), float(quarantined)
        return
    for name, value in zip(RECORD_COUNTERS, counts, strict=True):
        yield (name, source), float(value)


STAGE_HISTOGRAM = "metrify_batch_stage_duration_seconds"

# Review rejections per batch: few, found through the partial index on rejected items.
_REJECTED = (
    "(SELECT batch_id, count(*) AS n FROM ops.review_queue WHERE status = 'rejected' GROUP BY batch_id)"
)
# When the row was first recorded (null before migration 0015: then its processed_at, which the first
# re-record freezes into recorded_at); the expression of the index ingest_ledger_recorded.
_RECORDED = "coalesce(l.recorded_at, l.processed_at)"
_AT_INGEST = "l.records_in, l.accepted + coalesce(r.n, 0), l.quarantined - coalesce(r.n, 0), l.flagged + coalesce(r.n, 0)"

SETTLED_COUNTS = (
    f"SELECT l.source, l.origin, count(*), sum(l.records_in), sum(l.accepted + coalesce(r.n, 0)), "
    f"sum(l.quarantined - coalesce(r.n, 0)), sum(l.flagged + coalesce(r.n, 0)) "
    f"FROM ops.ingest_ledger l LEFT JOIN {_REJECTED} r USING (batch_id) "
    f"WHERE {_RECORDED} < %(until)s GROUP BY 1, 2"
)
# Per source, stage and bucket: the index of the first bound each time is <= to (len(bounds): +Inf
# only). width_bucket over the negated bounds keeps Prometheus's `le` at the bounds themselves, and
# grouping by it (a hash aggregate) costs a fraction of one FILTER count per bound. Each known stage
# is looked up by key (a value that is not a number, or a row whose timings are not an object, adds
# nothing): a third cheaper than expanding every pair with jsonb_each and casting it, and no filter
# of unknown selectivity, which made the planner sort 800k rows on disk instead of hashing them.
_STAGE_VALUES = ", ".join(
    f"CASE WHEN jsonb_typeof(l.stage_seconds -> '{stage}') = 'number' "
    f"THEN (l.stage_seconds ->> '{stage}')::float8 END"
    for stage in BATCH_STAGES
)
SETTLED_STAGES = (
    "SELECT l.source, s.stage, %(n)s - width_bucket(-s.seconds, %(negated)s::float8[]), count(*), sum(s.seconds) "
    f"FROM ops.ingest_ledger l CROSS JOIN LATERAL unnest(%(stages)s::text[], ARRAY[{_STAGE_VALUES}]) "
    f"AS s(stage, seconds) WHERE {_RECORDED} < %(until)s AND s.seconds IS NOT NULL GROUP BY 1, 2, 3"
)
RECENT_ROWS = (
    f"SELECT l.batch_id, {_RECORDED}, l.source, l.origin, {_AT_INGEST}, l.stage_seconds "
    f"FROM ops.ingest_ledger l LEFT JOIN {_REJECTED} r USING (batch_id) WHERE {_RECORDED} >= %(since)s"
)


def _stage_values(stage_seconds: Any) -> Iterator[tuple[str, float]]:
    """The known stages' timings of one ledger row (null for batches before stage timing)."""
    if not isinstance(stage_seconds, Mapping):
        return
    for stage in BATCH_STAGES:
        value = stage_seconds.get(stage)
        if isinstance(value, int | float) and not isinstance(value, bool):
            yield stage, float(value)


def contribution(
    source: str, origin: str, counts: tuple[int, int, int, int], stage_seconds: Any
) -> Contribution:
    """What one ledger row adds to every counter and histogram series."""
    out: dict[Any, float] = {("batches", source, origin): 1.0}
    out.update(_records(source, origin, counts))
    for stage, seconds in _stage_values(stage_seconds):
        out[("stage_count", source, stage)] = 1.0
        out[("stage_sum", source, stage)] = seconds
        for i, bound in enumerate(STAGE_BUCKETS):
            if seconds <= bound:
                out[("stage_le", source, stage, i)] = 1.0
    return out


def _settled(conn: psycopg.Connection, until: datetime) -> Iterator[tuple[Any, float]]:
    for source, origin, batches, *counts in conn.execute(SETTLED_COUNTS, {"until": until}):
        yield ("batches", source, origin), float(batches)
        yield from _records(source, origin, tuple(counts))
    params = {
        "until": until,
        "stages": list(BATCH_STAGES),
        "n": len(STAGE_BUCKETS),
        "negated": [-b for b in reversed(STAGE_BUCKETS)],
    }
    for source, stage, first, count, total in conn.execute(SETTLED_STAGES, params):
        yield ("stage_count", source, stage), float(count)
        yield ("stage_sum", source, stage), float(total)
        for i in range(first, len(STAGE_BUCKETS)):
            yield ("stage_le", source, stage, i), float(count)


def _cutoff(conn: psycopg.Connection, lookback: timedelta) -> datetime:
    row = conn.execute("SELECT now() - %s", (lookback,)).fetchone()
    assert row is not None
    cutoff: datetime = row[0]
    return cutoff


def seed_ledger(conn: psycopg.Connection, tally: WindowedTally, lookback: timedelta) -> None:
    """Sum the settled rows into `tally` (the first scrape's): one pass over the whole ledger, so run
    it in a transaction without the scrape's statement timeout. Rows recorded before the cutoff have
    committed (the lookback bounds a batch's transaction), so a later snapshot reading the rows from
    the cutoff on misses none and counts none twice."""
    started = time.perf_counter()
    cutoff = _cutoff(conn, lookback)
    tally.seed(_settled(conn, cutoff), cutoff)
    log.info("ledger metrics seeded from the settled ledger rows in %.2f s", time.perf_counter() - started)


def read_ledger(conn: psycopg.Connection, tally: WindowedTally, lookback: timedelta) -> None:
    """Bring `tally` (seeded) up to date with the ledger's recent rows."""
    if not tally.seeded:
        raise RuntimeError("the ledger tally is not seeded")
    cutoff = _cutoff(conn, lookback)
    rows = [
        (batch_id, at, contribution(source, origin, (received, accepted, quarantined, flagged), stages))
        for batch_id, at, source, origin, received, accepted, quarantined, flagged, stages in conn.execute(
            RECENT_ROWS, {"since": tally.settled_until}
        )
    ]
    tally.update(rows, cutoff)


def ledger_families(tally: WindowedTally) -> list[Metric]:
    """The record and batch counters and the stage histogram, from the tally's totals."""
    totals = tally.totals()
    records = {name: counter(f"metrify_records_{name}_total") for name in RECORD_COUNTERS}
    batches = counter("metrify_batches_total")
    replayed = counter(REPLAYED)
    stages = histogram(STAGE_HISTOGRAM)
    for key in sorted(k for k in totals if isinstance(k, tuple)):
        kind = key[0]
        if kind in records:
            records[kind].add_metric([key[1]], totals[key])
        elif kind == "batches":
            batches.add_metric([key[1], key[2]], totals[key])
        elif kind == "stage_count":
            _, source, stage = key
            add_histogram(
                stages,
                [source, stage],
                STAGE_BUCKETS,
                [totals[("stage_le", source, stage, i)] for i in range(len(STAGE_BUCKETS))],
                totals[key],
                totals[("stage_sum", source, stage)],
            )
    # 0 for a source with batches and no replay yet: a first replay is an increase from 0.
    sources = {key[1] for key in totals if isinstance(key, tuple) and key[0] in ("batches", "replayed")}
    for source in sorted(sources):
        for outcome in REPLAY_OUTCOMES:
            replayed.add_metric([source, outcome], totals.get(("replayed", source, outcome), 0.0))
    return [*records.values(), replayed, batches, stages]
