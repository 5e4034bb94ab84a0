"""Roll a range of days back to what the raw batches say: rebuild a source's hot rows from the lake.

Every batch is kept verbatim in the lake (`raw/<source>/dt=<arrival day>/<batch_id>.jsonl.gz`) and
the ledger says which batches touched which days (`ops.ingest_days`), when each was processed and
where it came from. `rebuild_from_raw` deletes a range's rows and replays those batches, in their
processing order, through the same decode, record rules and version-wins upsert as the ingest, so
the range holds exactly what the pipeline wrote; with `as_of`, what it held once the batches
processed by then were in (later batches are rolled back). One transaction: all of it or nothing.

What the replay reproduces, and from where:
- record versions: a landing file's sequence (in the file name the ledger keeps as `origin_ref`),
  a Kafka range's offsets (`<topic>-<partition>-<start>-<end>`: offset start + message position), a
  dead-letter replay's versions from the quarantine rows it resolved;
- the accept / flag / reject decision: the record rules (with the batch's `processed_at` as the
  clock for future timestamps) plus what the pipeline actually rejected, which its quarantine rows
  record (a reviewer's rejection included); records withheld by a reviewer's rejection stay out;
  a dead-letter replay stored exactly the records whose quarantine rows it resolved;
- `ingested_at`: the `processed_at` of the first batch that stored the key (both are `now()` of the
  ingest transaction), so a rebuilt row equals the row first written, bookkeeping included;
- withdrawals: a corrected file that replaced an earlier batch (`ingestion/replacements.py`) is
  replayed whenever that batch is, and right after it the rows still carrying the earlier batch's id
  in the range are deleted again.
No ledger, quarantine or review row is added. Derived tables are not touched: the result names the
days to re-materialise, and a rebuild that changed rows stamps them in `ops.retouched_days`, so the
next `metrify run` (or `late_days_sensor`) re-materialises them. Once committed, the cache entries of the meters in the range are invalidated
(a rollback may put older versions back; docs/api.md#cache).

A day archived out of the hot tier whose lake copy (or its manifest) is not in the lake any more is
rebuilt too: raw is then the only source of its rows. It must come back with the readings its copy
held (by key where the copy's object is still there, else by the recorded row count and content
checksum: `_against_copy`), and is recorded as restored (hot for `keep_days`, as a restore from the
copy is); the lifecycle writes its copy again from the hot rows before they next leave.

Refused, with nothing changed: a range under an active legal hold (a rebuild deletes rows; a meter's
hold, of meter readings only: grid and weather days are not its), days archived out of the hot tier and
not restored whose copy is still in the lake (restore them from it:
the copy holds the day as archived; an archived class is requested first), a day whose copy is missing
and that raw does not give back as the copy held it, a raw batch missing (expired) or archived in the lake,
rows of batches the ledger no longer knows (they could not be rebuilt), and a raw batch that does not
decode to the records the ledger counted (its versions could not be reproduced).
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg
from psycopg import sql

from metrify_assets.contracts import SourceContract, contract_for
from metrify_assets.ingestion import replacements
from metrify_assets.ingestion.batch import _review_rejected, stored_rows
from metrify_assets.ingestion.decode import decode
from metrify_assets.ingestion.kafka.ranges import OffsetRange
from metrify_assets.ingestion.landing import LandedFile
from metrify_assets.lifecycle import state
from metrify_assets.lifecycle.holds import covering
from metrify_assets.lifecycle.policy import DEFAULT_KEEP_DAYS
from metrify_assets.lifecycle.tables import TABLES, TieredTable, content_checksum
from metrify_assets.lifecycle.tiers import holding, sha256
from metrify_assets.meters.days import DAY_WINDOW, LOCAL_TS, day_params
from metrify_assets.quality import rules
from metrify_assets.resources.cache import Cache
from metrify_assets.resources.lake import Lake, ObjectArchivedError
from metrify_assets.storage.audit import Caller
from metrify_assets.storage.days import retouch_whole_day
from metrify_assets.storage.writes import _copy_frame

LOG_ACTION = "rollback"


class RollbackError(RuntimeError):
    """A rebuild that cannot be done as asked: nothing was changed."""


@dataclass(frozen=True)
class RebuildResult:
    """What a rebuild read, deleted and wrote (or, in a dry run, would have)."""

    source: str
    first_day: date
    last_day: date
    as_of: datetime | None
    dry_run: bool
    batches: tuple[str, ...]  # the raw batches read, in their processing order
    rolled_back: tuple[str, ...]  # batches that touched the range, processed after `as_of`: left out
    records_read: int  # records in the raw batches read (each batch whole: rules judge a batch)
    records_in_range: int  # of those, stored records that fall in the range (before version merging)
    rows_before: int
    rows_deleted: int
    rows_written: int  # row writes of the upserts (an insert, or a newer version replacing a row)
    rows_after: int
    rows_changed: int  # keys added, removed or at another record_version than before
    rows_corrected: int  # keys at the same record_version whose values differed (edited by hand)
    copies_missing: tuple[date, ...] = ()  # archived days whose lake copy is gone: rebuilt from raw
    keep_hot_until: date | None = None  # those days stay hot until then (recorded as restored)
    copies_checked: tuple[str, ...] = ()  # per such day, how its rebuilt rows were checked against the copy

    @property
    def batches_read(self) -> int:
        return len(self.batches)

    @property
    def rematerialise(self) -> tuple[date, date] | None:
        """The days whose derived tables (VEE, enrichment, anomaly scores, dbt marts) must be
        re-materialised from the rebuilt rows; None when no row changed."""
        if not (self.rows_changed or self.rows_corrected):
            return None
        return self.first_day, self.last_day


@dataclass(frozen=True)
class _Batch:
    batch_id: str
    origin: str
    origin_ref: str
    raw_key: str
    records_in: int
    processed_at: datetime
    first_seq: int | None  # its first ops.ingest_days row: the order of batches processed together


def _range_rows(relation: str, contract: SourceContract) -> str:
    """FROM/WHERE over `relation` aliased `r`: the rows of days %(first)s..%(last)s (meter readings
    by the meter's local day, as `meters.days`; grid and weather by the UTC day)."""
    if contract.source == "meter_readings":
        return f"{relation} r LEFT JOIN ops.meters m USING (meter_id) WHERE {DAY_WINDOW}"
    time = f"r.{contract.time_field}"
    return (
        f"{relation} r WHERE {time} >= (%(first)s::date::timestamp AT TIME ZONE 'UTC') "
        f"AND {time} < ((%(last)s::date + 1)::timestamp AT TIME ZONE 'UTC')"
    )


def _day_of(contract: SourceContract) -> str:
    if contract.source == "meter_readings":
        return f"{LOCAL_TS}::date"
    return f"(r.{contract.time_field} AT TIME ZONE 'UTC')::date"


def _stored_columns(contract: SourceContract) -> list[str]:
    """What the ingest writes (`batch.stored_rows`): everything but `ingested_at`."""
    return [*contract.columns, "record_version", "batch_id", "quality_flags"]


State = dict[tuple[Any, ...], tuple[int, str]]  # key -> (record_version, digest of the other values)


def _state(conn: psycopg.Connection, contract: SourceContract, params: dict[str, Any]) -> State:
    keys = ", ".join(f"r.{k}" for k in contract.key)
    values = ", ".join(f"r.{c}" for c in _stored_columns(contract))
    rows = conn.execute(
        f"SELECT {keys}, r.record_version, md5(ROW({values})::text) "
        f"FROM {_range_rows(f'ops.{contract.table}', contract)}",
        params,
    ).fetchall()
    n = len(contract.key)
    return {tuple(row[:n]): (int(row[n]), str(row[n + 1])) for row in rows}


def _check_holds(conn: psycopg.Connection, source: str, first_day: date, last_day: date) -> None:
    """Refuse a rebuild of days a hold keeps: any hold on the source (or all data), but a meter's hold
    only for a source whose rows name meters (`tiers.holding`): grid and weather days are not its."""
    held = holding(covering(conn, source, first_day, last_day), source)
    if held:
        listed = "; ".join(f"hold {h.hold_id} on {h.scope} ({h.reason}, by {h.author})" for h in held)
        raise RollbackError(
            f"{source} {first_day}..{last_day} is under a legal hold, and a rebuild deletes rows: {listed}"
        )


def _check_hot(
    conn: psycopg.Connection, lake: Lake, source: str, first_day: date, last_day: date
) -> list[state.DayState]:
    """Days whose rows the lifecycle deleted from PostgreSQL (archived) and that were not restored
    since are refused while their copy is in the lake (in any class): rebuilding them would put back
    only what raw still has, beside a tier that holds the day as it was archived. Those whose copy or
    manifest is not in the lake are returned: raw is all that is left of them."""
    gone = [d for d in state.days(conn, source, first_day, last_day) if d.hot_gone()]
    missing = [d for d in gone if lake.head(d.object_key) is None or lake.head(d.manifest_key) is None]
    days = [d.day for d in gone if d not in missing]
    if days:
        listed = ", ".join(str(d) for d in days[:5]) + (f" and {len(days) - 5} more" if len(days) > 5 else "")
        raise RollbackError(
            f"{source} days {listed} were archived out of the hot tier: restore them first "
            f"(`metrify restore --dataset {source} --from {days[0]} --to {days[-1]}`)"
        )
    return missing


def _batches(
    conn: psycopg.Connection, contract: SourceContract, params: dict[str, Any], range_from: str
) -> list[_Batch]:
    """Every batch with rows in the range: those the ledger says stored records of its days, and those
    of the rows the range holds now (whatever day they were recorded on), in processing order.
    Refuses when a row's batch has no ledger row (expired from the ledger: it could not be rebuilt)."""
    touched = {
        str(b): (int(s) if s is not None else None)
        for b, s in conn.execute(
            "SELECT batch_id, min(seq) FROM ops.ingest_days WHERE source = %(source)s "
            "AND day BETWEEN %(first)s::date AND %(last)s::date AND records > 0 GROUP BY batch_id",
            params,
        ).fetchall()
    }
    present = {str(b) for (b,) in conn.execute(f"SELECT DISTINCT r.batch_id FROM {range_from}", params)}
    # A corrected file that replaced one of them withdrew some of its rows: replayed too, wherever its
    # own rows fall, so that those rows are withdrawn again after it (`ingestion/replacements.py`).
    replacing = {
        str(b)
        for (b,) in conn.execute(
            "SELECT DISTINCT batch_id FROM ops.batch_replacements WHERE replaces = ANY(%s)",
            (sorted(set(touched) | present),),
        )
    }
    rows = conn.execute(
        "SELECT l.batch_id, l.origin, l.origin_ref, l.raw_key, l.records_in, l.processed_at, "
        "(SELECT min(seq) FROM ops.ingest_days d WHERE d.batch_id = l.batch_id) "
        "FROM ops.ingest_ledger l WHERE l.batch_id = ANY(%s) AND l.source = %s",
        (sorted(set(touched) | present | replacing), contract.source),
    ).fetchall()
    batches = [_Batch(*row) for row in rows]
    unknown = present - {b.batch_id for b in batches}
    if unknown:
        names = ", ".join(sorted(unknown)[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise RollbackError(
            f"rows of {contract.source} in the range come from batches the ledger does not know "
            f"({names}): a rebuild from raw could not bring them back"
        )
    return sorted(
        batches,
        key=lambda b: (b.processed_at, b.first_seq if b.first_seq is not None else 2**63, b.batch_id),
    )


def _check_raw(conn: psycopg.Connection, lake: Lake, source: str, batches: Sequence[_Batch]) -> None:
    """Every raw batch needed is in the lake and readable (not archived), before anything changes."""
    missing: list[_Batch] = []
    for batch in batches:
        info = lake.head(batch.raw_key)
        if info is None:
            missing.append(batch)
        elif not info.readable:
            raise RollbackError(
                f"raw batch {batch.batch_id} is archived in {info.storage_class} ({batch.raw_key}): "
                "request a restore of it first"
            )
    if not missing:
        return
    first = missing[0]
    day_prefix = first.raw_key.rsplit("/", 1)[0] + "/"
    expired = conn.execute(
        "SELECT max(at) FROM ops.lifecycle_log WHERE dataset = %s AND action = 'expired' AND NOT dry_run "
        "AND detail = %s",
        (f"raw/{source}/", day_prefix),
    ).fetchone()
    why = (
        f"expired under raw retention on {expired[0]:%Y-%m-%d}"
        if expired and expired[0] is not None
        else "deleted, or expired under raw retention"
    )
    more = f" (and {len(missing) - 1} more batches)" if len(missing) > 1 else ""
    raise RollbackError(
        f"raw batch {first.batch_id} is missing from the lake ({first.raw_key}: {why}){more}: "
        "the range cannot be rebuilt from raw"
    )


def _read_lines(lake: Lake, batch: _Batch) -> list[bytes]:
    """The batch's messages as `batch.write_raw` stored them: one line each."""
    body = gzip.decompress(lake.get(batch.raw_key))
    lines = body.split(b"\n")
    return lines[:-1] if lines and lines[-1] == b"" else lines


def _versions(batch: _Batch, lines: Sequence[bytes], replayed: dict[str, int]) -> list[int]:
    """Each message's record_version, as the ingest gave it."""
    if batch.origin == "landing":
        try:
            seq = LandedFile.from_path(Path(batch.origin_ref)).seq
        except ValueError:
            raise RollbackError(
                f"landing batch {batch.batch_id}: its origin {batch.origin_ref!r} is not a landing file "
                "name, so its record versions (the landing sequence) are unknown"
            ) from None
        return [seq] * len(lines)
    if batch.origin == "kafka":
        try:
            rng = OffsetRange.parse(batch.origin_ref)
        except ValueError:
            raise RollbackError(
                f"Kafka batch {batch.batch_id}: its origin {batch.origin_ref!r} is not an offset range"
            ) from None
        if rng.size != len(lines):
            raise RollbackError(
                f"Kafka batch {batch.batch_id} has {len(lines)} messages in {batch.raw_key} for the "
                f"{rng.size} offsets [{rng.start}, {rng.end}): a gap in the offsets (compaction, "
                "transaction markers) or a message split by a line break, so its record versions (the "
                "offsets) cannot be reproduced"
            )
        return list(range(rng.start, rng.end))
    if batch.origin == "replay":
        # A dead-letter replay: each message is a quarantined record under its original version;
        # only the ones it accepted (resolved) were stored, so only theirs matter.
        return [replayed.get(line.decode("utf-8", errors="replace"), 0) for line in lines]
    raise RollbackError(f"batch {batch.batch_id} has an unknown origin {batch.origin!r}")


def _stored(
    conn: psycopg.Connection,
    contract: SourceContract,
    batch: _Batch,
    lines: Sequence[bytes],
    quarantined: set[int],
    replayed: dict[str, int],
) -> tuple[pd.DataFrame, int]:
    """The batch's rows as the ingest stored them (all days), and the records it decodes to."""
    decoded = decode(contract, lines, _versions(batch, lines, replayed))
    if decoded.records_in != batch.records_in:
        raise RollbackError(
            f"raw batch {batch.batch_id} ({batch.raw_key}) decodes to {decoded.records_in} records, the "
            f"ledger counted {batch.records_in}: it cannot be rebuilt exactly"
        )
    records = decoded.records
    outcome = rules.evaluate(contract.source, records, pd.Timestamp(batch.processed_at))
    index = records["record_index"].to_numpy(dtype=np.int64)
    ok = (outcome.decision != "reject").to_numpy() & ~np.isin(index, list(quarantined))
    if batch.origin == "replay":
        ok &= np.array([decoded.payloads[int(i)] in replayed for i in index], dtype=bool)
    keep = ok & ~_review_rejected(conn, contract, records, ok)
    flags = outcome.reasons[keep].replace("", None).to_numpy()
    return stored_rows(contract, records[keep], batch.batch_id, flags), decoded.records_in


def _write(
    conn: psycopg.Connection,
    contract: SourceContract,
    rows: pd.DataFrame,
    ingested_at: datetime,
    params: dict[str, Any],
) -> tuple[int, int]:
    """Upsert the rows that fall in the range as `writes.upsert_rows` does (a version not older wins),
    a new row stamped `ingested_at`. Returns (rows in the range, row writes)."""
    if rows.empty:
        return 0, 0
    staging = f"_rebuild_{contract.table}"
    columns = list(rows.columns)
    cols = ", ".join(columns)
    sets = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in contract.key)
    with conn.cursor() as cur:
        cur.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {staging} (LIKE ops.{contract.table} INCLUDING DEFAULTS) "
            "ON COMMIT DROP"
        )
        cur.execute(f"TRUNCATE {staging}")
        _copy_frame(cur, sql.Identifier(staging), rows)
        cur.execute(
            f"WITH src AS MATERIALIZED (SELECT {', '.join(f'r.{c}' for c in columns)} "
            f"FROM {_range_rows(staging, contract)}), "
            f"ins AS (INSERT INTO ops.{contract.table} AS t ({cols}, ingested_at) "
            f"SELECT {cols}, %(ingested_at)s FROM src ON CONFLICT ({', '.join(contract.key)}) "
            f"DO UPDATE SET {sets} WHERE excluded.record_version >= t.record_version RETURNING 1) "
            "SELECT (SELECT count(*) FROM src), (SELECT count(*) FROM ins)",
            {**params, "ingested_at": ingested_at},
        )
        found = cur.fetchone()
    assert found is not None
    return int(found[0]), int(found[1])


def rebuild_from_raw(
    conn: psycopg.Connection,
    lake: Lake,
    source: str,
    first_day: date,
    last_day: date,
    as_of: datetime | None = None,
    dry_run: bool = False,
    on_batch: Callable[[str], None] | None = None,
    cache: Cache | None = None,
    caller: Caller | None = None,
    keep_days: int = DEFAULT_KEEP_DAYS,
) -> RebuildResult:
    """Rebuild `source`'s rows of the days `first_day..last_day` from the raw batches that touched
    them and were processed at or before `as_of` (None: all), in one transaction (rolled back for a
    `dry_run`, which reports the same). `on_batch` is told each batch id as it is read.

    Days are the meter's local day for meter readings, the UTC day for grid and weather samples.
    Raises `RollbackError` (nothing changed) when the range is held, archived (with its copy in the
    lake), or not rebuildable from raw. Archived days whose copy is missing are rebuilt and recorded as
    restored, hot for `keep_days`. Commits the connection (as review and replay do); a naive `as_of` is UTC. With a `caller`, a
    `rollback.rebuild` audit entry in the same transaction (none for a dry run: nothing changes).
    """
    contract = contract_for(source)
    if first_day > last_day:
        raise RollbackError(f"the first day {first_day} is after the last day {last_day}")
    if as_of is not None and as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=UTC)
    params: dict[str, Any] = {**day_params(first_day, last_day), "source": source}
    range_from = _range_rows(f"ops.{contract.table}", contract)
    result: RebuildResult | None = None
    with conn.transaction():
        _check_holds(conn, source, first_day, last_day)
        missing = _check_hot(conn, lake, source, first_day, last_day)
        for day_state in missing:
            state.lock_day(conn, source, day_state.day)
        # Ingest waits (its upsert needs ROW EXCLUSIVE) until the rebuild commits, then applies on top.
        conn.execute(f"LOCK TABLE ops.{contract.table} IN EXCLUSIVE MODE")
        touching = _batches(conn, contract, params, range_from)
        batches = [b for b in touching if as_of is None or b.processed_at <= as_of]
        _check_raw(conn, lake, source, batches)
        ids = [b.batch_id for b in batches]
        quarantined: dict[str, set[int]] = {}
        for batch_id, record_index in conn.execute(
            "SELECT batch_id, record_index FROM ops.quarantine WHERE batch_id = ANY(%s)", (ids,)
        ).fetchall():
            quarantined.setdefault(str(batch_id), set()).add(int(record_index))
        replays = [b.batch_id for b in batches if b.origin == "replay"]
        replayed: dict[str, dict[str, int]] = {}
        if replays:
            for by, payload, version in conn.execute(
                "SELECT resolved_by, payload, max(coalesce(record_version, 0)) FROM ops.quarantine "
                "WHERE resolved_by = ANY(%s) GROUP BY 1, 2",
                (replays,),
            ).fetchall():
                replayed.setdefault(str(by), {})[str(payload)] = int(version)

        withdrawing = replacements.replaced_by(conn, ids)
        before = _state(conn, contract, params)
        deleted = conn.execute(
            f"DELETE FROM ops.{contract.table} AS x USING (SELECT {', '.join(f'r.{k}' for k in contract.key)} "
            f"FROM {range_from}) AS d WHERE {' AND '.join(f'x.{k} = d.{k}' for k in contract.key)}",
            params,
        ).rowcount
        records_read = in_range = written = 0
        for batch in batches:
            if on_batch is not None:
                on_batch(batch.batch_id)
            lines = _read_lines(lake, batch)
            rows, records = _stored(
                conn,
                contract,
                batch,
                lines,
                quarantined.get(batch.batch_id, set()),
                replayed.get(batch.batch_id, {}),
            )
            records_read += records
            kept, writes = _write(conn, contract, rows, batch.processed_at, params)
            in_range += kept
            written += writes
            if batch.batch_id in withdrawing:
                _withdraw(conn, contract, withdrawing[batch.batch_id], range_from, params)
        after = _state(conn, contract, params)

        changed, corrected = _compare(before, after)
        per_day = _per_day(conn, contract, params)
        checks = [_against_copy(conn, lake, d) for d in missing]
        refused = [c for c in checks if c.refused]
        if refused:
            raise RollbackError(
                f"{source} days whose lake copy is missing would not come back from raw as their copy "
                f"held them ({'; '.join(c.said for c in refused)}): the batches that held them are no "
                "longer in the ledger"
                + (", or were processed after --as-of" if as_of is not None else "")
                + ", or the copy is in another lake (check METRIFY_LAKE_URL); a rebuild would lose or "
                "swap readings"
            )
        now = datetime.now(UTC)
        keep_until = now.date() + timedelta(days=keep_days) if missing else None
        meters = (
            {key[0] for key in before.keys() | after.keys()} if contract.source == "meter_readings" else set()
        )
        read = set(ids)
        result = RebuildResult(
            source=source,
            first_day=first_day,
            last_day=last_day,
            as_of=as_of,
            dry_run=dry_run,
            batches=tuple(ids),
            rolled_back=tuple(b.batch_id for b in touching if b.batch_id not in read),
            records_read=records_read,
            records_in_range=in_range,
            rows_before=len(before),
            rows_deleted=int(deleted),
            rows_written=written,
            rows_after=len(after),
            rows_changed=changed,
            rows_corrected=corrected,
            copies_missing=tuple(d.day for d in missing),
            keep_hot_until=keep_until,
            copies_checked=tuple(c.said for c in checks),
        )
        if dry_run:
            raise psycopg.Rollback()
        _log(conn, contract, result, per_day)
        for day_state in missing:
            assert keep_until is not None
            state.record_restored(conn, source, day_state.day, now, keep_until)
            state.log(
                conn,
                source,
                day_state.day,
                "restored",
                f"rebuilt from raw: {lake.uri(day_state.object_key)} or its manifest is not in the lake",
                int(per_day.get(day_state.day, 0)),
            )
        if changed or corrected:  # what derives from the rows is rebuilt by the next `metrify run`
            day = first_day
            while day <= last_day:
                retouch_whole_day(conn, source, f"rollback:{source}:{first_day}..{last_day}", day)
                day += timedelta(days=1)
        if caller is not None:
            target = f"{source}:{first_day}..{last_day}"
            affected = result.rows_changed + result.rows_corrected
            caller.record(conn, "rollback.rebuild", target, describe(result), affected)
    if not conn.autocommit:
        conn.commit()
    assert result is not None
    if cache is not None and not dry_run:
        cache.invalidate(meters)
    return result


def _withdraw(
    conn: psycopg.Connection,
    contract: SourceContract,
    replaced: list[str],
    range_from: str,
    params: dict[str, Any],
) -> None:
    """What a replacing batch did when it was processed, within the range: delete the rows still
    carrying the id of a batch it replaces (keys it did not store again)."""
    keys = ", ".join(f"r.{k}" for k in contract.key)
    conn.execute(
        f"DELETE FROM ops.{contract.table} AS x USING (SELECT {keys} FROM {range_from} "
        f"AND r.batch_id = ANY(%(replaced)s)) AS d WHERE {' AND '.join(f'x.{k} = d.{k}' for k in contract.key)}",
        {**params, "replaced": replaced},
    )


@dataclass(frozen=True)
class CopyCheck:
    """How a rebuilt day whose copy is missing compares with what its copy held."""

    refused: bool
    said: str  # "<day>: ...", for the refusal or the result


def _against_copy(conn: psycopg.Connection, lake: Lake, copy: state.DayState) -> CopyCheck:
    """The rebuilt rows of a day whose copy (or its manifest) is missing, against what the copy held.

    By key where the copy's object is still there and still the recorded bytes (only its manifest is
    gone): each key it held must come back at its version or a newer one (a batch processed after the
    copy), else readings would be lost or rolled back. Otherwise only the recorded row count and content
    checksum (SHA-256 over every row and column in key order) are left, not the keys: the rows must be
    at least as many, and then exactly the copy's rows (same checksum). A rebuild that matches in count
    but not in content (a reading swapped for another) is refused, as is one with more rows, since
    the checksum cannot tell added readings from swapped ones."""
    table = TABLES[copy.dataset]
    rebuilt = table.read_days(conn, copy.day, copy.day)
    held = _copy_rows(lake, copy)
    if held is not None:
        return _by_key(copy, table, held, rebuilt)
    if len(rebuilt) < copy.row_count:
        return CopyCheck(True, f"{copy.day}: {len(rebuilt)} rows of the {copy.row_count} its copy held")
    if content_checksum(rebuilt, table.key) == copy.checksum:
        return CopyCheck(False, f"{copy.day}: the {len(rebuilt)} rows match the copy's content checksum")
    many = (
        "as many as its copy held"
        if len(rebuilt) == copy.row_count
        else f"for the {copy.row_count} its copy held"
    )
    return CopyCheck(
        True,
        f"{copy.day}: {len(rebuilt)} rows, {many}, but not the copy's rows (their content checksum "
        "differs; only the copy's row count and checksum are recorded, not its keys, so which readings "
        "differ cannot be said)",
    )


def _copy_rows(lake: Lake, copy: state.DayState) -> pd.DataFrame | None:
    """The copy's rows when its object is still in the lake, readable and the bytes recorded."""
    if lake.head(copy.object_key) is None:
        return None
    try:
        body = lake.get(copy.object_key)
    except (FileNotFoundError, ObjectArchivedError):
        return None
    if sha256(body) != copy.sha256:
        return None
    return pd.read_parquet(io.BytesIO(body))


def _key_versions(frame: pd.DataFrame, key: tuple[str, str]) -> dict[tuple[str, pd.Timestamp], int]:
    ids = frame[key[0]].astype(str)
    times = pd.to_datetime(frame[key[1]], utc=True)
    return dict(zip(zip(ids, times, strict=True), frame["record_version"].astype(int), strict=True))


def _by_key(copy: state.DayState, table: TieredTable, held: pd.DataFrame, rebuilt: pd.DataFrame) -> CopyCheck:
    was, now = _key_versions(held, table.key), _key_versions(rebuilt, table.key)
    lost = sorted(k for k in was if k not in now)
    older = sorted(k for k in was if k in now and now[k] < was[k])
    added = len(now.keys() - was.keys())
    newer = sum(1 for k in was if k in now and now[k] > was[k])
    if not (lost or older):
        extra = (
            f"; {added} keys added and {newer} at a newer version by later batches" if added or newer else ""
        )
        return CopyCheck(
            False, f"{copy.day}: every one of the {len(was)} keys its copy held came back{extra}"
        )
    shown = ", ".join(f"{k[0]} {k[1].isoformat()}" for k in (lost or older)[:3])
    return CopyCheck(
        True,
        f"{copy.day}: {len(lost)} of the {len(was)} keys its copy held missing from raw"
        + (f", {len(older)} at an older version" if older else "")
        + f" (e.g. {shown})"
        + (f"; {added} {'key' if added == 1 else 'keys'} the copy did not hold" if added else ""),
    )


def _compare(before: State, after: State) -> tuple[int, int]:
    """(keys added, removed or at another version; keys at the same version with other values)."""
    changed = corrected = 0
    for key in before.keys() | after.keys():
        old, new = before.get(key), after.get(key)
        if old is None or new is None or old[0] != new[0]:
            changed += 1
        elif old[1] != new[1]:
            corrected += 1
    return changed, corrected


def describe(result: RebuildResult) -> dict[str, Any]:
    """The result as named values, in reading order (for a table or JSON)."""
    described: dict[str, Any] = {
        "source": result.source,
        "days": f"{result.first_day}..{result.last_day}",
        "as_of": result.as_of.isoformat() if result.as_of else "latest",
        "dry_run": result.dry_run,
        "batches_read": result.batches_read,
        "batches_rolled_back": len(result.rolled_back),
        "records_read": result.records_read,
        "records_in_range": result.records_in_range,
        "rows_before": result.rows_before,
        "rows_deleted": result.rows_deleted,
        "rows_written": result.rows_written,
        "rows_after": result.rows_after,
        "rows_changed": result.rows_changed,
        "rows_corrected": result.rows_corrected,
    }
    if result.copies_missing:
        described["copies_missing"] = ", ".join(str(d) for d in result.copies_missing)
        described["checked_against_copy"] = "; ".join(result.copies_checked)
        described["hot_until"] = str(result.keep_hot_until)
    days = result.rematerialise
    described["rematerialise"] = f"{days[0]}..{days[1]}" if days else "nothing: no row changed"
    return described


def _per_day(conn: psycopg.Connection, contract: SourceContract, params: dict[str, Any]) -> dict[date, int]:
    """The range's rows per day."""
    return {
        day: int(rows)
        for day, rows in conn.execute(
            f"SELECT {_day_of(contract)}, count(*) FROM {_range_rows(f'ops.{contract.table}', contract)} "
            "GROUP BY 1",
            params,
        ).fetchall()
    }


def _log(
    conn: psycopg.Connection, contract: SourceContract, result: RebuildResult, per_day: dict[date, int]
) -> None:
    """One `ops.lifecycle_log` row per day of the range, with the day's rows after the rebuild."""
    as_of = result.as_of.isoformat() if result.as_of else "latest"
    detail = (
        f"rebuilt {result.first_day}..{result.last_day} from raw as of {as_of}: "
        f"{result.batches_read} batches read, {len(result.rolled_back)} rolled back, "
        f"{result.rows_deleted} rows deleted, {result.rows_written} written, {result.rows_changed} changed, "
        f"{result.rows_corrected} corrected"
    )
    day = result.first_day
    while day <= result.last_day:
        conn.execute(
            "INSERT INTO ops.lifecycle_log (dataset, day, action, detail, rows) VALUES (%s, %s, %s, %s, %s)",
            (contract.source, day, LOG_ACTION, detail, int(per_day.get(day, 0))),
        )
        day = date.fromordinal(day.toordinal() + 1)
