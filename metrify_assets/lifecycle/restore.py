"""Restore: archived days back to the hot tier, exactly as they were archived.

A day whose hot rows were deleted is read from its lake copy, checked against its manifest and recorded
state (SHA-256, rows and content checksum), and inserted back into PostgreSQL; a key that is hot with the same or a newer
version keeps its row. A copy in GLACIER or DEEP_ARCHIVE cannot be read (S3 answers
`InvalidObjectState`): the restore is requested and reported, and running the same command once S3 has
made the copy readable finishes the day. A copy (or manifest) not in the lake fails that day alone, in
one line naming the object: the lake URL is wrong, or the day is rebuilt from its raw batches
(`rollback.rebuild_from_raw`, `metrify restore --using raw`). Restored days stay hot for `keep_days` before the hot window
applies again. Running a restore twice changes nothing the second time. Each day's commit invalidates
the cache entries of the meters it wrote (docs/api.md#cache). A dry run finds what a restore would do
with HEAD requests alone: it reads no copy, requests no restore from the archive class and writes
nothing (no rows, state, log, audit entry or rebuild mark).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import psycopg

from metrify_assets.lifecycle import state
from metrify_assets.lifecycle.policy import DEFAULT_KEEP_DAYS, MAX_KEEP_DAYS
from metrify_assets.lifecycle.tables import TABLES, content_checksum
from metrify_assets.lifecycle.tiers import Outcome, VerificationError, copy_missing, verify_copy
from metrify_assets.meters.days import day_params
from metrify_assets.resources.cache import Cache
from metrify_assets.resources.lake import Lake, ObjectArchivedError
from metrify_assets.storage.audit import Caller
from metrify_assets.storage.days import retouch_whole_day


@dataclass(frozen=True)
class DayRestore(Outcome):
    """What a restore did (or, in a dry run, would do) to one day, with where its copy is recorded:
    its tier and storage class."""

    tier: str = ""
    storage_class: str = ""


def _outcome(day_state: state.DayState, action: str, detail: str, rows: int = 0, size: int = 0) -> DayRestore:
    return DayRestore(
        day_state.dataset,
        day_state.day,
        action,
        detail,
        rows,
        size,
        tier=day_state.tier,
        storage_class=day_state.storage_class,
    )


def _failed(
    conn: psycopg.Connection, day_state: state.DayState, err: Exception, run_id: str | None
) -> DayRestore:
    detail = f"not restored: {err}"
    state.log(conn, day_state.dataset, day_state.day, "failed", detail, run_id=run_id)
    conn.commit()
    return _outcome(day_state, "failed", detail)


class _MissingCopyError(RuntimeError):
    """The day's copy or its manifest is not in the lake: said in one line with what to do."""

    def __init__(self, missing: str, dataset: str, day: date) -> None:
        super().__init__(
            f"{missing}: check METRIFY_LAKE_URL, or rebuild the day from its raw batches "
            f"(`metrify restore --using raw --dataset {dataset} --from {day}`)"
        )


def _planned(lake: Lake, day_state: state.DayState) -> DayRestore:
    """What restoring a day whose rows left PostgreSQL would do, found with HEAD requests alone (nothing
    read, requested or written): the copy and manifest are there with the recorded size, and the copy
    is readable, or its archive-class restore is in progress, or one would be requested. The rows are
    the copy's, as recorded; the restore itself checks them against the manifest."""
    dataset, day = day_state.dataset, day_state.day
    missing = copy_missing(lake, day_state)
    info = None if missing else lake.head(day_state.object_key)
    if info is None:
        gone = missing or f"{lake.uri(day_state.object_key)} is not in the lake"  # deleted since its HEAD
        return _outcome(
            day_state, "failed", f"would not be restored: {_MissingCopyError(gone, dataset, day)}"
        )
    if info.readable:
        action, detail = (
            "would restore",
            "the copy would be read, checked and inserted; the day marked to rebuild",
        )
    elif info.restore == "ongoing":
        since = day_state.restore_requested_at
        action = "restore in progress"
        detail = f"S3 is restoring the copy{f' (requested {since:%Y-%m-%d %H:%M})' if since else ''}; run the restore once ready"
    else:
        action = "would request restore"
        detail = (
            f"the copy is in {info.storage_class}: a restore would be requested (on S3 a paid retrieval, readable "
            "after hours), then the copy read once ready"
        )
    if info.storage_class != day_state.storage_class:  # a bucket rule moved it since
        detail += f" (in {info.storage_class}, recorded {day_state.storage_class})"
    return _outcome(day_state, action, detail, day_state.row_count, day_state.bytes)


def _why_hot(day_state: state.DayState) -> str:
    """What is true of a day whose rows are in PostgreSQL: never deleted, or restored since."""
    if day_state.hot_deleted_at is None:
        return f"copy in {day_state.tier}; rows never left"
    assert day_state.restored_at is not None
    until = f", hot until {day_state.keep_hot_until}" if day_state.keep_hot_until else ""
    return f"restored {day_state.restored_at:%Y-%m-%d}{until}"


class _Reported(list[DayRestore]):
    """The outcomes, each passed to a progress callback as it is added."""

    def __init__(self, on_day: Callable[[DayRestore], None] | None) -> None:
        super().__init__()
        self.on_day = on_day

    def append(self, outcome: DayRestore) -> None:
        super().append(outcome)
        if self.on_day is not None:
            self.on_day(outcome)


RESTORE_COPY_DAYS = 7  # how long S3 keeps the temporary readable copy of an archived object


def restore_days(
    conn: psycopg.Connection,
    lake: Lake,
    dataset: str,
    first: date,
    last: date,
    now: datetime,
    keep_days: int = DEFAULT_KEEP_DAYS,
    run_id: str | None = None,
    on_day: Callable[[DayRestore], None] | None = None,
    cache: Cache | None = None,
    caller: Caller | None = None,
    dry_run: bool = False,
) -> list[DayRestore]:
    """Bring the range's archived days of `dataset` back to PostgreSQL, day by day (one transaction each);
    `on_day` hears each day's outcome (progress). With a `caller`, each day restored (or requested
    from the archive class) has its audit entry in that day's transaction. A `dry_run` says what each
    day would take and changes nothing (`_planned`)."""
    if dataset not in TABLES:
        raise ValueError(f"unknown dataset {dataset!r}: one of {', '.join(TABLES)}")
    if not 0 <= keep_days <= MAX_KEEP_DAYS:
        raise ValueError(f"keep_days must be 0 to {MAX_KEEP_DAYS}, got {keep_days}")
    table = TABLES[dataset]
    outcomes: _Reported = _Reported(on_day)
    for day_state in state.days(conn, dataset, first, last):
        day = day_state.day
        if not day_state.hot_gone():
            outcomes.append(_outcome(day_state, "already hot", _why_hot(day_state)))
            continue
        if dry_run:
            outcomes.append(_planned(lake, day_state))
            continue
        try:
            body, frame = verify_copy(lake, table, day_state)
        except FileNotFoundError as err:
            outcomes.append(_failed(conn, day_state, _MissingCopyError(str(err), dataset, day), run_id))
            continue
        except ObjectArchivedError as err:
            status = lake.request_restore(day_state.object_key, days=RESTORE_COPY_DAYS)
            state.record_restore_requested(conn, dataset, day, now)
            state.log(
                conn, dataset, day, "restore_requested", f"{err.storage_class}: {status}", run_id=run_id
            )
            if caller is not None:
                requested = {"storage_class": err.storage_class, "status": status}
                caller.record(conn, "restore.request", f"{dataset}:{day}", requested, 0)
            conn.commit()
            if status != "available":
                detail = f"{day_state.object_key} is in {err.storage_class}: S3 is restoring it; run again once ready"
                outcomes.append(_outcome(day_state, "restore requested", detail))
                continue
            try:
                body, frame = verify_copy(lake, table, day_state)
            except FileNotFoundError as err:
                outcomes.append(_failed(conn, day_state, _MissingCopyError(str(err), dataset, day), run_id))
                continue
            except VerificationError as failed:
                outcomes.append(_failed(conn, day_state, failed, run_id))
                continue
        except VerificationError as failed:
            outcomes.append(_failed(conn, day_state, failed, run_id))
            continue
        state.lock_day(conn, dataset, day)
        written = table.restore_rows(conn, frame)
        hot = table.read_days(conn, day, day)
        exact = content_checksum(hot, table.key) == day_state.checksum
        state.record_restored(conn, dataset, day, now, now.date() + timedelta(days=keep_days))
        detail = f"{written} rows restored from {day_state.storage_class}; hot rows " + (
            "equal the archived copy (checksum)" if exact else "include newer versions than the copy"
        )
        state.log(conn, dataset, day, "restored", detail, written, len(body), run_id=run_id)
        retouch_whole_day(conn, dataset, f"restore:{dataset}:{day}", day)  # rebuild what derives from it
        if caller is not None:
            details = {"storage_class": day_state.storage_class, "keep_days": keep_days, "exact": exact}
            caller.record(conn, "restore.archive", f"{dataset}:{day}", details, written)
        conn.commit()
        if cache is not None and written:
            cache.invalidate(set(frame[table.meter_column]) if table.meter_column else ())
        outcomes.append(_outcome(day_state, "restored", detail, written, len(body)))
    return list(outcomes)


def has_hot_rows(conn: psycopg.Connection, dataset: str, first: date, last: date) -> bool:
    """Whether PostgreSQL holds any row of `dataset` on the days: for a range without a lake copy, the
    difference between rows that never left and no data at all."""
    row = conn.execute(
        f"SELECT EXISTS (SELECT 1 FROM {TABLES[dataset].day_sql})", day_params(first, last)
    ).fetchone()
    conn.commit()
    return bool(row and row[0])
