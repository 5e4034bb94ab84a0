"""Restore: archived days back to the hot tier, exactly as they were archived.

A day whose hot rows were deleted is read from its lake copy, checked against its manifest and recorded
state (SHA-256, rows and content checksum), and inserted back into PostgreSQL; a key that is hot with the same or a newer
version keeps its row. A copy in GLACIER or DEEP_ARCHIVE cannot be read (S3 answers
`InvalidObjectState`): the restore is requested and reported, and running the same command once S3 has
made the copy readable finishes the day. A copy (or manifest) not in the lake fails that day alone, in
one line naming the object: the lake URL is wrong, or the day is rebuilt from its raw batches
(`rollback.rebuild_from_raw`, `metrify restore --using raw`). Restored days stay hot for `keep_days` before the hot window
applies again. Running a restore twice changes nothing the second time. Each day's commit invalidates
the cache entries of the meters it wrote (docs/api.md#cache).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta

import psycopg

from metrify_assets.lifecycle import state
from metrify_assets.lifecycle.policy import DEFAULT_KEEP_DAYS
from metrify_assets.lifecycle.tables import TABLES, content_checksum
from metrify_assets.lifecycle.tiers import Outcome, VerificationError, verify_copy
from metrify_assets.resources.cache import Cache
from metrify_assets.resources.lake import Lake, ObjectArchivedError
from metrify_assets.storage.audit import Caller
from metrify_assets.storage.days import retouch_whole_day


def _failed(conn: psycopg.Connection, dataset: str, day: date, err: Exception, run_id: str | None) -> Outcome:
    detail = f"not restored: {err}"
    state.log(conn, dataset, day, "failed", detail, run_id=run_id)
    conn.commit()
    return Outcome(dataset, day, "failed", detail)


class _MissingCopyError(RuntimeError):
    """The day's copy or its manifest is not in the lake: said in one line with what to do."""

    def __init__(self, err: FileNotFoundError, dataset: str, day: date) -> None:
        super().__init__(
            f"{err}: check METRIFY_LAKE_URL, or rebuild the day from its raw batches "
            f"(`metrify restore --using raw --dataset {dataset} --from {day}`)"
        )


def _why_hot(day_state: state.DayState) -> str:
    """What is true of a day whose rows are in PostgreSQL: never deleted, or restored since."""
    if day_state.hot_deleted_at is None:
        return f"copy in {day_state.tier}; rows never left"
    assert day_state.restored_at is not None
    until = f", hot until {day_state.keep_hot_until}" if day_state.keep_hot_until else ""
    return f"restored {day_state.restored_at:%Y-%m-%d}{until}"


class _Reported(list[Outcome]):
    """The outcomes, each passed to a progress callback as it is added."""

    def __init__(self, on_day: Callable[[Outcome], None] | None) -> None:
        super().__init__()
        self.on_day = on_day

    def append(self, outcome: Outcome) -> None:
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
    on_day: Callable[[Outcome], None] | None = None,
    cache: Cache | None = None,
    caller: Caller | None = None,
) -> list[Outcome]:
    """Bring the range's archived days of `dataset` back to PostgreSQL, day by day (one transaction each);
    `on_day` hears each day's outcome (progress). With a `caller`, each day restored (or requested
    from the archive class) has its audit entry in that day's transaction."""
    if dataset not in TABLES:
        raise ValueError(f"unknown dataset {dataset!r}: one of {', '.join(TABLES)}")
    table = TABLES[dataset]
    outcomes: _Reported = _Reported(on_day)
    for day_state in state.days(conn, dataset, first, last):
        day = day_state.day
        if not day_state.hot_gone():
            outcomes.append(Outcome(dataset, day, "already hot", _why_hot(day_state)))
            continue
        try:
            body, frame = verify_copy(lake, table, day_state)
        except FileNotFoundError as err:
            outcomes.append(_failed(conn, dataset, day, _MissingCopyError(err, dataset, day), run_id))
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
                outcomes.append(Outcome(dataset, day, "restore requested", detail))
                continue
            try:
                body, frame = verify_copy(lake, table, day_state)
            except FileNotFoundError as err:
                outcomes.append(_failed(conn, dataset, day, _MissingCopyError(err, dataset, day), run_id))
                continue
            except VerificationError as failed:
                outcomes.append(_failed(conn, dataset, day, failed, run_id))
                continue
        except VerificationError as failed:
            outcomes.append(_failed(conn, dataset, day, failed, run_id))
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
        outcomes.append(Outcome(dataset, day, "restored", detail, written, len(body)))
    return list(outcomes)
