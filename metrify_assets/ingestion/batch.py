"""Process one batch end to end: raw to the lake, decode, rules, GX guard, idempotent writes, ledger.

The same code serves landing files and Kafka offset ranges: a batch is identified by a deterministic
`batch_id`, so processing it again (a retry, a replay, an overlapping range) rewrites the same rows.
Order matters for recovery: the raw batch is written first (immutable), the operational writes and
the ledger row commit in one transaction, and the caller commits Kafka offsets only after that. The
Redis cache, too, hears of the batch only after the commit (`refresh_cache`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
import psycopg
from isal import igzip

from metrify_assets.contracts import METER_READINGS, SourceContract
from metrify_assets.ingestion import replacements
from metrify_assets.ingestion.decode import DecodedBatch, Message, decode
from metrify_assets.ingestion.replacements import Withdrawal
from metrify_assets.observability.stages import BatchTrace, within
from metrify_assets.quality import alerts, gx, review, rules
from metrify_assets.quality.alerts import QualityAlert
from metrify_assets.quality.gx import SuiteResult
from metrify_assets.quality.quarantine import (
    Origin,
    QuarantineRow,
    quarantine,
    requarantine,
    resolve,
    supersede,
)
from metrify_assets.quality.rules import RuleOutcome
from metrify_assets.quality.scoring import QualityScore, batch_quality
from metrify_assets.resources.cache import Cache
from metrify_assets.resources.lake import Lake
from metrify_assets.resources.quality import DEFAULT_ALERT_THRESHOLD
from metrify_assets.storage import writes
from metrify_assets.storage.days import first_days_moving, retouch_first_days
from metrify_assets.storage.latest import latest_readings
from metrify_assets.storage.writes import LedgerEntry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchSpec:
    """Which batch: its id, where it came from, and the day it belongs to in the lake."""

    contract: SourceContract
    batch_id: str
    origin: str  # landing / kafka
    origin_ref: str
    dt: date

    @property
    def raw_key(self) -> str:
        return f"raw/{self.contract.source}/dt={self.dt.isoformat()}/{self.batch_id}.jsonl.gz"


class SuiteFailedError(RuntimeError):
    """A blocking GX suite failed: nothing of the batch was written to the guarded table."""

    def __init__(self, result: SuiteResult) -> None:
        failed = [e.expectation_type for e in result.expectations if not e.success]
        super().__init__(f"GX suite {result.suite_name} failed: {', '.join(failed)}")
        self.result = result


@dataclass(frozen=True)
class BatchResult:
    spec: BatchSpec
    raw_uri: str
    raw_written: bool
    decoded: DecodedBatch
    outcome: RuleOutcome
    raw_suite: SuiteResult
    validated_suite: SuiteResult
    ledger: LedgerEntry
    quality: QualityScore
    quarantined: list[QuarantineRow]  # what went to ops.quarantine (Kafka runs also dead-letter it)
    review_rejected: int = 0  # records left out because a reviewer rejected them (already quarantined)
    alert: QualityAlert | None = None  # set when the quality score is below the alert threshold
    meter_ids: tuple[str, ...] = ()  # meters whose readings it stored or withdrew (cache entries change)
    withdrawal: Withdrawal | None = None  # what it withdrew of the batches it replaces (`--replaces`)


def write_raw(lake: Lake, spec: BatchSpec, messages: Sequence[Message]) -> tuple[str, bool]:
    """Store the batch verbatim (unknown fields included) once; an existing raw batch is never rewritten.

    One line per message; a null value (a Kafka tombstone) is an empty line.
    """
    if lake.exists(spec.raw_key):
        return lake.uri(spec.raw_key), False
    return lake.put(spec.raw_key, raw_body(messages), content_type="application/gzip"), True


def raw_body(messages: Sequence[Message]) -> bytes:
    """A raw batch's bytes: the messages as gzipped lines. ISA-L's level 1 writes standard gzip (any
    reader inflates it) at a tenth of zlib's level 6's CPU, for ~13 % more bytes on JSON lines
    (docs/decisions.md, Throughput)."""
    lines = (m if isinstance(m, bytes) else (m or "").encode("utf-8", errors="replace") for m in messages)
    return igzip.compress(b"".join(line.rstrip(b"\n") + b"\n" for line in lines), compresslevel=1, mtime=0)


def _record_key(contract: SourceContract, rows: pd.DataFrame) -> pd.Series:
    parts = [
        rows[k].dt.strftime("%Y-%m-%dT%H:%M:%SZ") if k == contract.time_field else rows[k].astype(str)
        for k in contract.key
    ]
    key = parts[0]
    for part in parts[1:]:
        key = key + "|" + part
    return key


def declared_history(backfill: bool | Sequence[bool]) -> bool:
    """Whether the whole batch was declared history: the batch's flag, or every message's."""
    if isinstance(backfill, bool):
        return backfill
    return len(backfill) > 0 and all(backfill)


def _record_backfill(backfill: bool | Sequence[bool], decoded: DecodedBatch) -> bool | pd.Series:
    """Per-message backfill declarations carried to the decoded records; the batch's flag when it has
    one or every message was declared, so a batch with nothing decodable keeps its declaration."""
    if isinstance(backfill, bool) or declared_history(backfill):
        return declared_history(backfill)
    by_record = np.asarray(backfill, dtype=bool)[np.asarray(decoded.message_index, dtype=np.int64)]
    records = decoded.records
    return pd.Series(by_record[records["record_index"].to_numpy(dtype=np.int64)], index=records.index)


def process_batch(
    spec: BatchSpec,
    messages: Sequence[Message],
    versions: Sequence[int],
    lake: Lake,
    conn: psycopg.Connection,
    now: pd.Timestamp,
    received_at: pd.Timestamp | None = None,
    run_id: str | None = None,
    alert_threshold: float = DEFAULT_ALERT_THRESHOLD,
    replay_of: Sequence[Origin] | None = None,
    backfill: bool | Sequence[bool] = False,
    stages: BatchTrace | None = None,
) -> BatchResult:
    """Run the batch through every stage; raises `SuiteFailedError` (writing nothing) on a failed guard.

    `received_at` (when the batch arrived: landing time, Kafka timestamp) drives timeliness; `now`
    bounds future timestamps. A batch scoring below `alert_threshold` (the `quality` resource's,
    from METRIFY_QUALITY_ALERT_THRESHOLD) raises a quality alert. `replay_of` makes the batch a
    dead-letter replay: message i is the quarantined record `replay_of[i]`, whose row is resolved
    (accepted now) or keeps the new reasons (still rejected) instead of a new row being added.
    `backfill` declares the batch (or, per message, its messages) history: not scored for timeliness.
    A batch whose every message was declared history is a backfill for its quality condition, whatever
    it decoded to; a dead-letter replay has a condition of its own (`quality.alerts.condition_key`).
    `stages` is the caller's trace of the batch (which also times reading and committing it);
    without one, the batch gets a span of its own. The stage times go to its ledger row.
    """
    with within(stages, spec.contract.source, spec.batch_id, run_id, spec.origin) as batch:
        return _process(
            spec,
            messages,
            versions,
            lake,
            conn,
            now,
            received_at,
            run_id,
            alert_threshold,
            replay_of,
            backfill,
            batch,
        )


def _process(
    spec: BatchSpec,
    messages: Sequence[Message],
    versions: Sequence[int],
    lake: Lake,
    conn: psycopg.Connection,
    now: pd.Timestamp,
    received_at: pd.Timestamp | None,
    run_id: str | None,
    alert_threshold: float,
    replay_of: Sequence[Origin] | None,
    backfill: bool | Sequence[bool],
    stages: BatchTrace,
) -> BatchResult:
    contract = spec.contract
    with stages.stage("lake_write"):
        raw_uri, raw_written = write_raw(lake, spec, messages)
    with stages.stage("decode"):
        decoded = decode(contract, messages, versions)
    records = decoded.records
    with stages.stage("gx", {"metrify.gx_suite": f"raw_{contract.source}"}):
        raw_suite = gx.validate(f"raw_{contract.source}", records)
    with stages.stage("rules"):
        outcome = rules.evaluate(contract.source, records, now)
        rejected = (outcome.decision == "reject").to_numpy()
        withheld = _review_rejected(conn, contract, records, ~rejected)
    keep = ~rejected & ~withheld
    accepted = records[keep]
    with stages.stage("gx", {"metrify.gx_suite": f"validated_{contract.source}"}):
        validated_suite = gx.validate(f"validated_{contract.source}", accepted)
    if not validated_suite.success:
        raise SuiteFailedError(validated_suite)

    # Stage upsert: the rows to store, quarantine and review, written with the ledger in one transaction.
    with stages.stage("upsert"):
        flagged_mask = (outcome.decision[keep] == "flag").to_numpy()
        stored = stored_rows(
            contract, accepted, spec.batch_id, outcome.reasons[keep].replace("", None).to_numpy()
        )

        rejected_idx = records.index[rejected]

        def version(record_index: int) -> int:
            return int(versions[decoded.message_index[record_index]])

        quarantined = [
            QuarantineRow(m.record_index, m.payload, m.reason, version(m.record_index))
            for m in decoded.malformed
        ] + [
            QuarantineRow(int(i), decoded.payloads[int(i)], str(r), version(int(i)))
            for i, r in zip(records.loc[rejected_idx, "record_index"], outcome.reasons[rejected], strict=True)
        ]
        flagged = accepted[flagged_mask]
        review = list(
            zip(
                flagged["record_index"].astype(int).tolist(),
                _record_key(contract, flagged).tolist(),
                outcome.reasons[keep][flagged_mask].astype(str).tolist(),
                strict=True,
            )
        )
        quality = batch_quality(
            contract.source,
            records,
            outcome,
            ingested_at=received_at if received_at is not None else now,
            malformed=len(decoded.malformed),
            backfill=_record_backfill(backfill, decoded),
        )
        entry = LedgerEntry(
            batch_id=spec.batch_id,
            source=contract.source,
            origin=spec.origin,
            origin_ref=spec.origin_ref,
            raw_key=spec.raw_key,
            records_in=decoded.records_in,
            accepted=len(accepted),
            flagged=len(flagged),
            quarantined=len(quarantined) + int(withheld.sum()),
            quality_score=round(quality.score, 2),
            run_id=run_id,
            backfill_records=quality.backfill,
            timeliness=None if quality.timeliness is None else round(quality.timeliness, 4),
        )
        alert = alerts.evaluate(spec.batch_id, contract.source, quality, alert_threshold)
        with conn.transaction():
            # A corrected file that replaces earlier batches (`metrify ingest --replaces`): their rows
            # are counted before the upsert, and those it did not store again withdrawn after it.
            pending = (
                replacements.before_upsert(conn, contract, spec.batch_id)
                if spec.origin == "landing"
                else None
            )
            # A meter's readings from before its first stored one move its first day (VEE's, from
            # its first reading on): the old first day is re-run too, once the batch is stored.
            moved = _first_days_moving(conn, contract, stored)
            writes.upsert_rows(conn, contract, stored)
            if not stored.empty:  # dead letters of other batches whose reading it stored are settled
                supersede(conn, contract, spec.batch_id)
            withdrawal = replacements.withdraw(conn, contract, spec.batch_id, pending) if pending else None
            writes.record_days(
                conn, contract, spec.batch_id, len(stored), spec.dt, replay=replay_of is not None
            )
            retouch_first_days(conn, spec.batch_id, moved)
            if replay_of is None:
                quarantine(conn, contract.source, spec.batch_id, quarantined)
            else:
                origin = [replay_of[m] for m in decoded.message_index]  # by record_index
                requarantine(conn, [(origin[q.record_index], q.reasons) for q in quarantined])
                resolve(conn, [origin[int(i)] for i in accepted["record_index"]], spec.batch_id)
            writes.enqueue_review(conn, contract.source, spec.batch_id, review)
            alerts.sync(
                conn,
                spec.batch_id,
                contract.source,
                alert,
                backfill=declared_history(backfill),
                replay=replay_of is not None,
                at=now.to_pydatetime(),
            )
            # Last, so that the stage times it stores cover every other write of the batch.
            writes.record_batch(conn, entry, stages.elapsed())
    stages.annotate(
        {
            "metrify.records_in": entry.records_in,
            "metrify.accepted": entry.accepted,
            "metrify.flagged": entry.flagged,
            "metrify.quarantined": entry.quarantined,
            "metrify.quality_score": entry.quality_score,
        }
    )
    if alert is not None:
        log.warning(alert.message)
    return BatchResult(
        spec,
        raw_uri,
        raw_written,
        decoded,
        outcome,
        raw_suite,
        validated_suite,
        entry,
        quality,
        quarantined,
        review_rejected=int(withheld.sum()),
        alert=alert,
        meter_ids=tuple(
            sorted(set(stored["meter_id"].unique()) | set(withdrawal.meter_ids if withdrawal else ()))
        )
        if contract.source == "meter_readings"
        else (),
        withdrawal=withdrawal,
    )


def refresh_cache(cache: Cache | None, conn: psycopg.Connection, result: BatchResult) -> None:
    """Once the batch committed: its meters' latest-reading entries from what is stored now (never
    the batch's own rows: a replayed old batch must not pass for the newest) and new generations
    for every cached result they, or queries not about one meter, feed (docs/api.md#cache)."""
    if cache is not None:
        cache.refresh_latest(result.meter_ids, lambda ids: latest_readings(conn, ids))


def stored_rows(
    contract: SourceContract, accepted: pd.DataFrame, batch_id: str, quality_flags: np.ndarray | None
) -> pd.DataFrame:
    """The accepted records as the operational table stores them (what `upsert_rows` writes)."""
    stored = accepted[[*contract.columns, "record_version"]].copy()
    stored["batch_id"] = batch_id
    stored["quality_flags"] = quality_flags
    for field in contract.fields:
        if field.default is not None:
            stored[field.name] = stored[field.name].fillna(field.default)
    return stored


def _first_days_moving(
    conn: psycopg.Connection, contract: SourceContract, stored: pd.DataFrame
) -> list[date]:
    """`storage.days.first_days_moving` of the meter readings `stored` is about to store."""
    if contract.source != METER_READINGS.source or stored.empty:
        return []
    earliest = pd.to_datetime(stored["reading_start"], utc=True).groupby(stored["meter_id"]).min()
    return first_days_moving(conn, earliest.index.tolist(), earliest.tolist())


def _review_rejected(
    conn: psycopg.Connection, contract: SourceContract, records: pd.DataFrame, candidates: np.ndarray
) -> np.ndarray:
    """Records a reviewer already rejected (same key, version not newer): a replay must not restore them."""
    withheld = np.zeros(len(records), dtype=bool)
    if not candidates.any() or not review.any_rejected(conn, contract.source):
        return withheld
    keys = _record_key(contract, records[candidates])
    rejected = review.rejected_versions(conn, contract.source, keys.unique().tolist())
    if rejected:
        limit = keys.map(rejected)
        withheld[candidates] = (
            limit.notna() & (records.loc[candidates, "record_version"] <= limit)
        ).to_numpy()
    return withheld
