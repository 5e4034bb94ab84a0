"""Moving a day between tiers: a verified copy, then a storage-class change, never a delete first.

- hot -> warm (`copy_to_warm`): the day's rows to one Parquet (zstd) object in S3 STANDARD, read back
  and checked (bytes' SHA-256, rows, content checksum), with a manifest beside it recording them.
- warm -> cold -> archive (`transition`): the object is read and checked against its manifest, its
  storage class changed in place, and the result checked again (class, size, ETag, and the bytes where
  the new class is readable). A day whose copy does not match is not moved, and reported.
Each step records the day's state in `ops.lifecycle_days` and the action in `ops.lifecycle_log`.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, replace
from datetime import date, datetime

import pandas as pd
import psycopg

from metrify_assets.lifecycle import holds, state
from metrify_assets.lifecycle.policy import METERED_DATASETS, TIERED_DATASETS, Policy, age_days
from metrify_assets.lifecycle.tables import TABLES, TieredTable, content_checksum
from metrify_assets.resources.lake import ARCHIVE_CLASSES, Lake, ObjectArchivedError, ObjectLockedError
from metrify_assets.storage.parquet import to_parquet_bytes

MANIFEST_VERSION = 1
# The S3 object tag that bucket lifecycle rules select tier objects by (manifests stay STANDARD).
TIER_TAG = {"metrify-lifecycle": "tiered"}
PARQUET = "application/vnd.apache.parquet"


def data_key(dataset: str, day: date) -> str:
    return f"curated/{dataset}/dt={day.isoformat()}/{dataset}.parquet"


def manifest_key(dataset: str, day: date) -> str:
    return f"curated/{dataset}/dt={day.isoformat()}/manifest.json"


@dataclass(frozen=True)
class Outcome:
    """What the lifecycle did (or, in a dry run, would do) to one day of one dataset."""

    dataset: str
    day: date
    action: str  # copied, unchanged, merged, moved, deleted_hot, expired, skipped, held, failed, ...
    detail: str = ""
    rows: int = 0
    size: int = 0

    @property
    def failed(self) -> bool:
        return self.action == "failed"


def holding(found: list[holds.Hold], dataset: str) -> list[holds.Hold]:
    """The holds of `found` (`holds.covering`, `holds.covering_raw`) that keep data of `dataset` (a
    tiered dataset, or the source of raw batches and landing files): a meter's hold keeps data that
    can hold that meter's rows only, not a grid or weather day."""
    if dataset in TIERED_DATASETS and dataset not in METERED_DATASETS:
        return [h for h in found if h.meter_id is None]
    return found


class VerificationError(RuntimeError):
    """A copy that does not match what it should hold."""


def sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def read_copy(lake: Lake, key: str) -> tuple[bytes, pd.DataFrame]:
    body = lake.get(key)
    return body, pd.read_parquet(io.BytesIO(body))


def write_verified(
    conn: psycopg.Connection,
    lake: Lake,
    table: TieredTable,
    day: date,
    rows: pd.DataFrame,
    now: datetime,
    run_id: str | None,
    action: str,
    checksum: str | None = None,
) -> Outcome:
    """Write `rows` as the day's warm copy, read it back, check it, then write the manifest and record it.
    `checksum` is the rows' content checksum when the caller computed it already."""
    rows = rows.sort_values(list(table.key), kind="stable").reset_index(drop=True)
    checksum = checksum or content_checksum(rows, table.key)
    body = to_parquet_bytes(rows)
    key, mkey = data_key(table.dataset, day), manifest_key(table.dataset, day)
    lake.put(key, body, content_type=PARQUET, storage_class="STANDARD", tags=TIER_TAG)
    back, frame = read_copy(lake, key)
    if sha256(back) != sha256(body) or len(frame) != len(rows):
        raise VerificationError(f"{key}: the object read back differs from what was written")
    if content_checksum(frame, table.key) != checksum:
        raise VerificationError(f"{key}: the rows read back differ from the hot rows (content checksum)")
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "dataset": table.dataset,
        "day": day.isoformat(),
        "object": key.rsplit("/", 1)[1],
        "format": "parquet/zstd",
        "rows": len(rows),
        "bytes": len(body),
        "sha256": sha256(body),
        "content_checksum": checksum,
        "key_columns": list(table.key),
        "columns": list(rows.columns),
        "source_table": table.table,
        "written_at": now.isoformat(),
    }
    lake.put(mkey, json.dumps(manifest, indent=2).encode(), content_type="application/json")
    for written in (
        key,
        mkey,
    ):  # the previous copy (a versioned bucket keeps it) goes once this one checked out
        lake.delete_older_versions(written)
    state.record_copy(
        conn,
        state.DayState(
            dataset=table.dataset,
            day=day,
            tier="warm",
            storage_class="STANDARD",
            object_key=key,
            manifest_key=mkey,
            row_count=len(rows),
            bytes=len(body),
            checksum=checksum,
            sha256=sha256(body),
            verified_at=now,
            moved_at=now,
        ),
    )
    state.log(
        conn, table.dataset, day, action, f"verified copy to {key}", len(rows), len(body), run_id=run_id
    )
    return Outcome(table.dataset, day, action, key, len(rows), len(body))


def newest_versions(frame: pd.DataFrame, key: tuple[str, str]) -> pd.DataFrame:
    """One row per key: the highest record version (as the hot upsert keeps)."""
    ordered = frame.sort_values([*key, "record_version"], kind="stable")
    return ordered.drop_duplicates(list(key), keep="last").reset_index(drop=True)


KEEPS_HOT = ("failed", "held", "late_rows_kept")  # plans that leave the day's hot rows and copy as they are


@dataclass(frozen=True)
class CopyPlan:
    """What bringing a day's copy up to date does with its hot rows, decided by `plan_copy` for a run
    and its dry run alike.

    `action`: `skipped` (no hot rows), `unchanged`, one of `KEEPS_HOT` (logged as the action, with
    `detail`), `merge` (late rows into the copy) or `write` (a new copy from the hot rows; `rewrite`
    says why a copy the database calls current is written again)."""

    action: str
    detail: str = ""
    rewrite: str | None = None
    held: tuple[holds.Hold, ...] = ()
    checksum: str | None = None  # of the hot rows, for `write` and `merge`


def _late_rows_kept(rows: int, storage_class: str) -> CopyPlan:
    return CopyPlan(
        "late_rows_kept",
        f"{rows} late rows kept hot: the day's copy is in {storage_class}; "
        "restore the day (`metrify restore`) to merge them",
    )


def plan_copy(
    conn: psycopg.Connection,
    lake: Lake,
    table: TieredTable,
    day: date,
    current: state.DayState | None,
    rows: pd.DataFrame,
    due_class: str | None = None,
) -> CopyPlan:
    """Decide what `copy_to_warm` does with the day's hot `rows` (reads and HEADs only, no write).
    `due_class`: the storage class the copy will be in when the run gets to the day, for a dry run
    that plans the tier moves before it without making them; else the copy's class is the lake's."""
    if not len(rows):
        return CopyPlan("skipped", "no hot rows")
    checksum = content_checksum(rows, table.key)
    rewrite = None  # why a copy the database calls current is written again from the hot rows
    if current is not None and not current.hot_gone() and current.checksum == checksum:
        rewrite = copy_missing(lake, current)
        if rewrite is None:
            return CopyPlan("unchanged", f"copy in {current.tier} holds these rows")
        refused = rewrite_refused(lake, current, rewrite)
        if refused is not None:
            return CopyPlan("failed", refused)
    if current is not None and current.hot_gone() and current.kept_checksum == checksum:
        missing = copy_missing(lake, current)
        if missing is None:
            return CopyPlan(
                "unchanged", "the hot rows left are in the copy too (a hold kept them, or merged)"
            )
        detail = rewrite_refused(lake, current, missing)
        assert detail is not None  # its rows left the hot tier: never written again from what is left
        return CopyPlan("failed", detail)
    held = tuple(holding(holds.covering(conn, table.dataset, day, day), table.dataset))
    if held and current is not None:
        # A new version of a held object would carry no hold: the copy stays, the rows stay hot.
        return CopyPlan(
            "held", f"copy not replaced while legal hold {held[0].hold_id} stands; {len(rows)} rows stay hot"
        )
    if current is not None and current.hot_gone():
        moved = due_class is not None and CLASS_RANK[due_class] > CLASS_RANK.get(current.storage_class, 0)
        if moved and due_class in ARCHIVE_CLASSES:  # archived by the run first, not restored
            return _late_rows_kept(len(rows), due_class)
        info = None if moved else lake.head(current.object_key)
        if info is not None and not info.readable:
            return _late_rows_kept(len(rows), info.storage_class)
        return CopyPlan("merge", checksum=checksum)
    return CopyPlan("write", rewrite=rewrite, held=held, checksum=checksum)


def copy_to_warm(
    conn: psycopg.Connection,
    lake: Lake,
    table: TieredTable,
    day: date,
    now: datetime,
    run_id: str | None = None,
) -> Outcome:
    """Bring the day's lake copy up to date with its hot rows (not committed: the caller commits), as
    `plan_copy` decides:

    - no copy yet, or the hot rows changed: write a new verified copy (warm);
    - the hot rows are what the copy holds: nothing to do;
    - the day's hot rows were deleted and late rows came since: merge them into the copy if it is
      readable (warm or cold; the day goes back to warm), recording that the copy settles the hot rows
      (holds them, or a newer version of their keys), else leave them hot and say so. Late rows the
      copy holds newer versions of already leave the copy unwritten."""
    state.lock_day(conn, table.dataset, day)
    current = state.get(conn, table.dataset, day)
    rows = table.read_days(conn, day, day)
    plan = plan_copy(conn, lake, table, day, current, rows)
    if plan.action in ("skipped", "unchanged"):
        return Outcome(table.dataset, day, plan.action, plan.detail, len(rows))
    if plan.action in KEEPS_HOT:
        state.log(conn, table.dataset, day, plan.action, plan.detail, len(rows), run_id=run_id)
        action = "skipped" if plan.action == "late_rows_kept" else plan.action
        return Outcome(table.dataset, day, action, plan.detail, len(rows))
    if plan.rewrite is not None:
        state.log(conn, table.dataset, day, "copy_missing", plan.rewrite, len(rows), run_id=run_id)
    try:
        if plan.action == "merge":
            assert current is not None and plan.checksum is not None
            try:
                body, archived = read_copy(lake, current.object_key)
            except ObjectArchivedError as err:  # archived by a bucket rule since the HEAD
                kept = _late_rows_kept(len(rows), err.storage_class)
                state.log(conn, table.dataset, day, kept.action, kept.detail, len(rows), run_id=run_id)
                return Outcome(table.dataset, day, "skipped", kept.detail, len(rows))
            merged = newest_versions(pd.concat([archived, rows], ignore_index=True), table.key)
            # Every hot row is now settled by the copy: in it as it is, or superseded there by a newer
            # version of its key. Recorded so, they go with the copy's rows (archived too, unread) and
            # no later run merges them again.
            state.record_kept_checksum(conn, table.dataset, day, plan.checksum)
            if sha256(body) == current.sha256 and content_checksum(merged, table.key) == current.checksum:
                detail = f"the {len(rows)} hot rows are in the copy, or older than its versions of them"
                return Outcome(table.dataset, day, "unchanged", detail, len(rows))
            return write_verified(conn, lake, table, day, merged, now, run_id, "merged")
        outcome = write_verified(conn, lake, table, day, rows, now, run_id, "copied", plan.checksum)
        if plan.rewrite is not None:
            outcome = replace(
                outcome, detail=f"{outcome.detail}, rewritten from the hot rows: {plan.rewrite}"
            )
        if plan.held:  # the day's first copy, under a hold placed before it existed: locked at once
            holds.lock_objects(
                lake, [data_key(table.dataset, day), manifest_key(table.dataset, day)], on=True
            )
        return outcome
    except ObjectLockedError as err:
        return Outcome(table.dataset, day, "held", f"copy not replaced: {err}", len(rows))


def verify_copy(lake: Lake, table: TieredTable, day_state: state.DayState) -> tuple[bytes, pd.DataFrame]:
    """Read the day's copy and check it against its manifest and recorded state; its bytes and rows on
    success. `FileNotFoundError` when the copy or its manifest is not in the lake."""
    manifest = json.loads(lake.get(day_state.manifest_key))
    body = lake.get(day_state.object_key)
    if sha256(body) != manifest["sha256"] or manifest["sha256"] != day_state.sha256:
        raise VerificationError(f"{day_state.object_key}: bytes differ from the manifest's SHA-256")
    frame = pd.read_parquet(io.BytesIO(body))
    problems = []
    if len(frame) != manifest["rows"] or manifest["rows"] != day_state.row_count:
        problems.append(f"{len(frame)} rows, the manifest says {manifest['rows']}")
    elif content_checksum(frame, table.key) != manifest["content_checksum"]:
        problems.append("content checksum differs from the manifest's")
    if problems:
        raise VerificationError(f"{day_state.object_key}: " + "; ".join(problems))
    return body, frame


def copy_missing(lake: Lake, day_state: state.DayState) -> str | None:
    """Why the day's recorded copy is not in the lake as recorded (it or its manifest absent, or of
    another size), or None when it is: two HEADs, the check a copy gets before the database's word on
    it is taken."""
    info = lake.head(day_state.object_key)
    if info is None:
        return f"{lake.uri(day_state.object_key)} is not in the lake"
    if info.size != day_state.bytes:
        return f"{lake.uri(day_state.object_key)} is {info.size} bytes, recorded {day_state.bytes}"
    if lake.head(day_state.manifest_key) is None:
        return f"{lake.uri(day_state.manifest_key)} is not in the lake"
    return None


def rewrite_refused(lake: Lake, day_state: state.DayState, missing: str) -> str | None:
    """Why a day whose copy is `missing` (`copy_missing`) must not be written again from its whole hot
    rows, or None when it may: with neither the copy nor its manifest there, the lake is likely not the
    one it was written to (a mistyped METRIFY_LAKE_URL), and a copy written there would leave the rows
    in the wrong place once the hot ones go. Nor when it held rows that already left PostgreSQL: the
    hot rows alone cannot stand in for it."""
    if day_state.hot_gone():
        return f"{missing}: it held the rows that left PostgreSQL; rebuild it from raw (`metrify restore --using raw`)"
    if lake.exists(day_state.object_key) or lake.exists(day_state.manifest_key):
        return None
    return (
        f"{missing}, nor is its manifest: is METRIFY_LAKE_URL ({lake.uri('')}) the lake it was written "
        "to? Hot rows kept. If it is and the day's folder was deleted, delete the day's row of "
        "ops.lifecycle_days: the next run writes a new copy from the hot rows"
    )


CLASS_TIER = {"STANDARD": "warm", "STANDARD_IA": "cold", "GLACIER": "archive", "DEEP_ARCHIVE": "archive"}
CLASS_RANK = {"STANDARD": 0, "STANDARD_IA": 1, "GLACIER": 2, "DEEP_ARCHIVE": 3}


def transition(
    conn: psycopg.Connection,
    lake: Lake,
    table: TieredTable,
    day_state: state.DayState,
    tier: str,
    storage_class: str,
    now: datetime,
    run_id: str | None = None,
    dry_run: bool = False,
) -> Outcome:
    """Move a day's verified copy to `tier` by a storage-class change (not committed).

    The copy is checked against its manifest, copied onto itself in the new class, and the result
    checked; only then is the superseded version (versioned buckets) deleted. A copy a bucket rule
    already moved as far (or further) is checked by size and recorded where it is."""
    dataset, day, key = day_state.dataset, day_state.day, day_state.object_key
    detail = f"{day_state.storage_class} -> {storage_class}"
    if dry_run:
        state.log(
            conn, dataset, day, f"move_{tier}", detail, day_state.row_count, day_state.bytes, True, run_id
        )
        return Outcome(dataset, day, f"would move to {tier}", detail, day_state.row_count, day_state.bytes)
    state.lock_day(conn, dataset, day)
    try:
        before = lake.head(key)
        if before is None:
            raise FileNotFoundError(f"{key} is not in the lake")
        if CLASS_RANK.get(before.storage_class, 0) >= CLASS_RANK[storage_class]:
            if before.size != day_state.bytes:
                raise VerificationError(
                    f"{key}: {before.size} bytes in {before.storage_class}, recorded {day_state.bytes}"
                )
            tier, storage_class = CLASS_TIER[before.storage_class], before.storage_class
            detail = f"already in {storage_class} (a bucket lifecycle rule moved it); size checked"
        else:
            body, _ = verify_copy(lake, table, day_state)
            info = lake.set_storage_class(key, storage_class, source_version=before.version_id)
            if info.storage_class != storage_class or info.size != len(body):
                raise VerificationError(
                    f"{key}: after the change it is {info.storage_class}, {info.size} bytes"
                )
            if before.etag is not None and info.etag != before.etag:
                raise VerificationError(f"{key}: ETag changed by the storage-class change")
            if info.readable and sha256(lake.get(key)) != day_state.sha256:
                raise VerificationError(f"{key}: bytes changed by the storage-class change")
            if before.version_id and info.version_id and info.version_id != before.version_id:
                lake.delete_version(key, before.version_id)  # the new version is verified: the old one goes
    except (VerificationError, ObjectLockedError, ObjectArchivedError, FileNotFoundError) as err:
        state.log(conn, dataset, day, "failed", f"not moved to {tier}: {err}", run_id=run_id)
        return Outcome(dataset, day, "failed", f"not moved to {tier}: {err}", day_state.row_count)
    state.record_move(conn, dataset, day, tier, storage_class, now)
    state.log(
        conn, dataset, day, f"moved_{tier}", detail, day_state.row_count, day_state.bytes, run_id=run_id
    )
    return Outcome(dataset, day, f"moved to {tier}", detail, day_state.row_count, day_state.bytes)


PREVIOUS_TIER = {"cold": "warm", "archive": "cold"}
ORDER = ("warm", "cold", "archive")


def move_due(
    conn: psycopg.Connection,
    lake: Lake,
    policy: Policy,
    today: date,
    first: date,
    last: date,
    target: str,
    now: datetime,
    run_id: str | None = None,
    dry_run: bool = False,
) -> list[Outcome]:
    """Move the days `first`..`last` whose copy is in the tier before `target` and whose age makes them
    due in `target` or beyond, one transaction per day; a day under a legal hold stays where it is.
    A dry run moves nothing, so it plans as if the run's earlier moves were made: a warm day due in
    the archive is listed for the cold tier, then for the archive (as the real run moves it)."""
    outcomes: list[Outcome] = []
    moves_from = ORDER[: ORDER.index(target)] if dry_run else (PREVIOUS_TIER[target],)
    for dataset in TIERED_DATASETS:
        ages = policy.tier_ages(dataset)
        for day_state in state.days(conn, dataset, first, last):
            due = ages.lake_tier(age_days(day_state.day, today))
            if day_state.tier not in moves_from or ORDER.index(due) < ORDER.index(target):
                continue
            held = holding(holds.covering(conn, dataset, day_state.day, day_state.day), dataset)
            if held:
                detail = f"stays {day_state.tier}: legal hold {', '.join(str(h.hold_id) for h in held)}"
                rows = day_state.row_count  # the copy's rows, kept where they are
                state.log(conn, dataset, day_state.day, "held", detail, rows, dry_run=dry_run, run_id=run_id)
                conn.commit()
                outcomes.append(Outcome(dataset, day_state.day, "held", detail, rows))
                continue
            outcomes.append(
                transition(
                    conn,
                    lake,
                    TABLES[dataset],
                    day_state,
                    target,
                    ages.storage_class(target),
                    now,
                    run_id,
                    dry_run,
                )
            )
            conn.commit()
    return outcomes
