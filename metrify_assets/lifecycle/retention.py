"""Retention: what the weekly job deletes, and what it must keep.

- Hot rows of a tiered dataset older than its hot window go once the day's lake copy is verified to
  hold them (the copy is brought up to date first); the per meter-day tables derived from meter
  readings (VEE series and day summaries, anomaly scores, enrichment) go with them. The dbt marts are
  incremental and keep their history.
- Lake copies older than `expire_days` (if set), raw batches (to STANDARD_IA, then deleted), dated
  quality reports, quarantine rows, the operational log tables and ingested landing files
  (`landing_files.py`) by their own retention.
- A day whose rebuild is owed (touched by a batch, a decision or a restore since the refresh last
  rebuilt it: `storage/rebuilt.py`) keeps its hot rows, with the reason in the log, until a later
  pass finds it rebuilt.
- Nothing a legal hold covers is deleted, moved or expired. A dry run records and returns the same
  plan without changing anything.
Work is proportional to what is due: every step selects due days by index, never the history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import pandas as pd
import psycopg

from metrify_assets.lifecycle import holds, state
from metrify_assets.lifecycle.landing_files import expire_landing_files
from metrify_assets.lifecycle.policy import TIERED_DATASETS, Policy, age_days, day_span
from metrify_assets.lifecycle.tables import TABLES, TieredTable, content_checksum
from metrify_assets.lifecycle.tiers import (
    KEEPS_HOT,
    Outcome,
    VerificationError,
    copy_missing,
    copy_to_warm,
    holding,
    plan_copy,
    rewrite_refused,
    verify_copy,
    write_verified,
)
from metrify_assets.resources.lake import Lake, ObjectArchivedError, ObjectLockedError
from metrify_assets.storage import rebuilt

# Per meter-day tables rebuilt from meter readings: they leave the hot tier with the readings.
DERIVED_BY_LOCAL_DATE = (
    "ops.vee_readings",
    "ops.vee_days",
    "ops.anomaly_meter_days",
    "ops.enriched_meter_readings",
)
# A day touched (a late batch, a decision, a restore) whose refresh has not rebuilt it since keeps its
# hot rows: deleted now, the owed rebuild would run on none (storage/rebuilt.py).
REBUILD_OWED = "rebuild_owed"
ANOMALY_SCORES = "ops.anomaly_scores"  # per reading: leaves with the readings (by key)
QUARANTINE = "ops.quarantine"  # rejected records: by their own retention (`quarantine_days`)
# A quarantined reading belongs to each meter its payload names (read with a regex: a malformed payload
# names its meter too; a message dead-lettered whole, each of its records' meters). `t` is the row,
# `h` the hold (`_hold_clause`).
QUARANTINE_METER = (
    "t.source = 'meter_readings' AND EXISTS (SELECT 1 FROM regexp_matches(t.payload, "
    r"""'"meter_id"\s*:\s*"([^"]+)"', 'g') AS m(found) WHERE m.found[1] = h.meter_id)"""
)
# Operational log tables under the `ops` retention: (table, the time that ages a row, rows eligible).
OPS_TABLES: tuple[tuple[str, str, str], ...] = (
    ("ops.review_queue", "(decided_at AT TIME ZONE 'UTC')::date", "decided_at IS NOT NULL"),
    ("ops.quality_alerts", "(raised_at AT TIME ZONE 'UTC')::date", "true"),
    ("ops.run_alerts", "(failed_at AT TIME ZONE 'UTC')::date", "true"),
    ("ops.alert_deliveries", "(delivered_at AT TIME ZONE 'UTC')::date", "delivered_at IS NOT NULL"),
    ("ops.alerts", "(resolved_at AT TIME ZONE 'UTC')::date", "resolved_at IS NOT NULL"),
    ("ops.grid_stability", "day", "true"),
    ("ops.grid_excluded_samples", "day", "true"),  # with the hours that count them
    ("ops.grid_state_events", "start_day", "ended_at IS NOT NULL"),
    # Rows of the last hour stay whatever the pass's clock (`as_of` may be far ahead of `at`): the
    # running pass never erases its own record.
    ("ops.lifecycle_log", "(at AT TIME ZONE 'UTC')::date", "at < now() - interval '1 hour'"),
)
# The `ops` tables whose rows name a meter, and how row `t` is hold `h`'s meter: a meter's hold keeps
# those rows only (the others' rows name no meter, and only a dataset-wide hold keeps them).
OPS_TABLE_METERS = {
    "ops.review_queue": "t.source = 'meter_readings' AND split_part(t.record_key, '|', 1) = h.meter_id",
}
# Kept: `ops.ingest_ledger` and `ops.ingest_days` make ingestion exactly-once (a landing file whose
# batch left the ledger would be ingested again); `ops.vee_audit` is the billing audit trail;
# `ops.audit_log` is append-only (its trigger refuses DELETE: docs/operations.md#audit-log);
# `ops.retouched_days` grows by a row a review decision, the days they touched.
RAW_SOURCES = TIERED_DATASETS
# Every `ops` table some pass deletes rows from (by age, or with a day that left the hot tier): a model
# rebuilt from one of them in full (`metrify warehouse rebuild`) loses the rows of those days.
TRIMMED_TABLES = frozenset(
    {
        *(t.table for t in TABLES.values()),
        *DERIVED_BY_LOCAL_DATE,
        ANOMALY_SCORES,
        QUARANTINE,
        *(table for table, _, _ in OPS_TABLES),
    }
)


@dataclass
class Report:
    """Every outcome of a retention pass (applied, or planned in a dry run)."""

    outcomes: list[Outcome]
    dry_run: bool

    def counts(self) -> pd.DataFrame:
        frame = pd.DataFrame(
            [(o.dataset, o.action, o.day, o.rows, o.size) for o in self.outcomes],
            columns=["dataset", "action", "day", "rows", "bytes"],
        )
        if not len(frame):
            return frame.drop(columns="day").assign(days=[])
        # Days, not outcomes: landing files are one outcome each, several to a day.
        return (
            frame.groupby(["dataset", "action"], as_index=False)
            .agg(days=("day", "nunique"), rows=("rows", "sum"), bytes=("bytes", "sum"))
            .sort_values(["dataset", "action"])
        )

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.failed]


def hot_candidate_days(conn: psycopg.Connection, table: TieredTable, cutoff: date) -> list[date]:
    """Days before `cutoff` that still have hot rows (an index range scan of the old rows only)."""
    time_col = table.key[1]
    if table.dataset == "meter_readings":
        day_expr = "(r.reading_start AT TIME ZONE coalesce(m.timezone, 'UTC'))::date"
        source = "ops.meter_readings r LEFT JOIN ops.meters m USING (meter_id)"
    else:
        day_expr = f"(r.{time_col} AT TIME ZONE 'UTC')::date"
        source = f"{table.table} r"
    rows = conn.execute(
        f"SELECT DISTINCT {day_expr} FROM {source} "
        f"WHERE r.{time_col} < ((%s::date + 1)::timestamp AT TIME ZONE 'UTC') ORDER BY 1",
        (cutoff,),
    ).fetchall()
    return [d for (d,) in rows if d < cutoff]


def _verified_copy(lake: Lake, table: TieredTable, day_state: state.DayState) -> pd.DataFrame | None:
    """The day's copy as read from the lake and checked against its manifest and recorded state, or
    None for an archived copy (unreadable until restored), checked by its size. Raises
    `VerificationError` or `FileNotFoundError`: hot rows never go on the database's word alone (a
    trial deleted a day whose copy was gone, and all of them under a mistyped lake URL)."""
    try:
        _, copy = verify_copy(lake, table, day_state)
    except ObjectArchivedError:
        missing = copy_missing(lake, day_state)
        if missing is not None:
            raise VerificationError(missing) from None
        return None
    return copy


def _copy_holds_rows(
    table: TieredTable, day_state: state.DayState, hot: pd.DataFrame, copy: pd.DataFrame | None
) -> bool:
    """Whether the day's verified copy (None: archived, unread) holds every one of these hot rows, as
    they are."""
    if content_checksum(hot, table.key) in (day_state.checksum, day_state.kept_checksum):
        return True  # the copy verified against the manifest whose content checksum the state records
    if copy is None:
        return False
    keys = [*table.key, "record_version"]
    subset = copy.merge(hot[keys], on=keys, how="inner")[list(hot.columns)]
    return len(subset) == len(hot) and content_checksum(subset, table.key) == content_checksum(hot, table.key)


def _going(table: TieredTable, hot: pd.DataFrame, kept_meters: set[str]) -> pd.DataFrame:
    """The day's hot rows that leave PostgreSQL: all but those of meters a hold keeps."""
    if table.meter_column is None or not kept_meters:
        return hot
    return hot[~hot[table.meter_column].isin(kept_meters)]


def _copy_refused(lake: Lake, day_state: state.DayState) -> str | None:
    """Why a run would keep the day's hot rows for its copy, checked as a dry run can (HEADs, no
    read): a missing copy it may not write again (`rewrite_refused`). A copy only missing its object,
    or of another size, beside whole hot rows, the run writes again."""
    missing = copy_missing(lake, day_state)
    return None if missing is None else rewrite_refused(lake, day_state, missing)


def _kept(
    conn: psycopg.Connection, table: TieredTable, day: date, detail: str, rows: int, run_id: str | None
) -> Outcome:
    """A day whose hot rows stay because its copy failed a check: logged, and failing the pass."""
    state.log(conn, table.dataset, day, "failed", detail, rows, run_id=run_id)
    return Outcome(table.dataset, day, "failed", detail, rows)


def delete_hot_day(
    conn: psycopg.Connection,
    lake: Lake,
    table: TieredTable,
    day: date,
    day_holds: list[holds.Hold],
    now: datetime,
    run_id: str | None,
) -> Outcome:
    """Delete the day's hot rows the verified copy holds (minus held meters), with derived rows."""
    copied = copy_to_warm(conn, lake, table, day, now, run_id)
    if copied.failed:  # logged: the pass fails with it
        return copied
    if copied.action not in ("copied", "merged", "unchanged"):
        return Outcome(table.dataset, day, "kept_hot", f"copy not current: {copied.detail}", copied.rows)
    day_state = state.get(conn, table.dataset, day)
    assert day_state is not None
    hot = table.read_days(conn, day, day, for_update=True)
    try:
        copy = _verified_copy(lake, table, day_state)
    except VerificationError as err:
        if day_state.hot_gone() or content_checksum(hot, table.key) != day_state.checksum:
            return _kept(
                conn, table, day, f"hot rows kept: the day's copy did not verify: {err}", len(hot), run_id
            )
        # The bytes there are not the copy, and the hot rows are whole: write it again from them.
        state.log(conn, table.dataset, day, "copy_corrupt", str(err), len(hot), run_id=run_id)
        write_verified(conn, lake, table, day, hot, now, run_id, "copied")
        day_state = state.get(conn, table.dataset, day)
        assert day_state is not None
        copy = _verified_copy(lake, table, day_state)
    except FileNotFoundError as err:
        return _kept(
            conn, table, day, f"hot rows kept: the day's copy did not verify: {err}", len(hot), run_id
        )
    if not _copy_holds_rows(table, day_state, hot, copy):
        detail = "the day's copy does not hold every hot row (it changed while we looked): kept"
        state.log(conn, table.dataset, day, "kept_hot", detail, len(hot), run_id=run_id)
        return Outcome(table.dataset, day, "kept_hot", detail, len(hot))
    kept_meters = holds.held_meters(day_holds, day)
    going = _going(table, hot, kept_meters)
    deleted = table.delete_rows(conn, going)
    if table.dataset == "meter_readings" and len(going):
        # Every meter's derived rows of the day but a held meter's: a registered meter that sent
        # nothing has a VEE day (all missing) and no reading, and kept it hot for good.
        held = sorted(kept_meters)
        for derived in DERIVED_BY_LOCAL_DATE:
            conn.execute(
                f"DELETE FROM {derived} WHERE local_date = %s AND NOT (meter_id = ANY(%s))", (day, held)
            )
        conn.execute(
            f"DELETE FROM {ANOMALY_SCORES} s USING unnest(%s::text[], %s::timestamptz[]) AS d(meter_id, reading_start) "
            "WHERE s.meter_id = d.meter_id AND s.reading_start = d.reading_start",
            (going["meter_id"].astype(str).tolist(), list(going["reading_start"])),
        )
    kept = (
        hot[hot[table.meter_column].isin(kept_meters)] if table.meter_column and kept_meters else hot.iloc[:0]
    )
    kept_checksum = content_checksum(kept, table.key) if len(kept) else None
    state.record_hot_deleted(conn, table.dataset, day, deleted, now, kept_checksum)
    detail = f"{deleted} hot rows deleted, copy read back and verified in {day_state.tier}"
    if len(going) < len(hot):
        detail += f"; {len(hot) - len(going)} rows of held meters {sorted(kept_meters)} kept"
        _log_meters_held(conn, table, day, day_holds, kept_meters, len(hot) - len(going), False, run_id)
    state.log(conn, table.dataset, day, "deleted_hot", detail, deleted, run_id=run_id)
    return Outcome(table.dataset, day, "deleted_hot", detail, deleted)


def _log_meters_held(
    conn: psycopg.Connection,
    table: TieredTable,
    day: date,
    day_holds: list[holds.Hold],
    kept_meters: set[str],
    kept: int,
    dry_run: bool,
    run_id: str | None,
) -> None:
    """A `held` entry for the hot rows of the day a meter's hold keeps while the other meters' go."""
    if not kept:
        return
    ids = ", ".join(str(h.hold_id) for h in day_holds if h.meter_id in kept_meters)
    detail = f"hot rows of meter {', '.join(sorted(kept_meters))} kept: legal hold {ids}"
    state.log(conn, table.dataset, day, "held", detail, kept, dry_run=dry_run, run_id=run_id)


def clean_hot(
    conn: psycopg.Connection,
    lake: Lake,
    policy: Policy,
    today: date,
    now: datetime,
    dry_run: bool = False,
    run_id: str | None = None,
) -> list[Outcome]:
    """Each tiered dataset's hot rows past its hot window, day by day, one transaction per day."""
    outcomes: list[Outcome] = []
    for dataset in TIERED_DATASETS:
        table = TABLES[dataset]
        ages = policy.tier_ages(dataset)
        cutoff = today - timedelta(days=ages.hot_days - 1)  # days with age >= hot_days are before it
        candidates = hot_candidate_days(conn, table, cutoff)
        owed = rebuilt.owed(conn, candidates)
        for day in candidates:
            day_state = state.get(conn, dataset, day)
            if (
                day_state is not None
                and day_state.keep_hot_until is not None
                and day_state.keep_hot_until >= today
            ):
                outcomes.append(
                    Outcome(dataset, day, "kept_hot", f"restored: hot until {day_state.keep_hot_until}")
                )
                continue
            day_holds = holding(holds.covering(conn, dataset, day, day), dataset)
            if any(h.meter_id is None and h.covers(dataset, day) for h in day_holds):
                ids = ", ".join(str(h.hold_id) for h in day_holds)
                kept = len(table.read_days(conn, day, day))  # the rows the hold keeps hot
                state.log(
                    conn,
                    dataset,
                    day,
                    "held",
                    f"hot rows kept: legal hold {ids}",
                    kept,
                    dry_run=dry_run,
                    run_id=run_id,
                )
                conn.commit()
                outcomes.append(Outcome(dataset, day, "held", f"legal hold {ids}", kept))
                continue
            if day in owed:  # trimmed by a later run, once rebuilt: the rebuild reads these hot rows
                reason = owed[day].reason
                state.log(conn, dataset, day, REBUILD_OWED, reason, dry_run=dry_run, run_id=run_id)
                conn.commit()
                outcomes.append(Outcome(dataset, day, REBUILD_OWED, reason))
                continue
            refused = _copy_refused(lake, day_state) if dry_run and day_state is not None else None
            if refused is not None:  # what the run would fail on, said before it runs
                state.log(conn, dataset, day, "failed", refused, dry_run=True, run_id=run_id)
                conn.commit()
                outcomes.append(Outcome(dataset, day, "would fail", refused))
                continue
            if dry_run:  # the rows the run would delete: a meter's hold keeps its own
                hot = table.read_days(conn, day, day)
                # Decided as the run decides, on the class the run's tier moves leave the copy in.
                due = None if day_holds else ages.storage_class(ages.lake_tier(age_days(day, today)))
                plan = plan_copy(conn, lake, table, day, day_state, hot, due)
                if plan.action in KEEPS_HOT:
                    state.log(conn, dataset, day, plan.action, plan.detail, len(hot), None, True, run_id)
                    conn.commit()
                    action = "would fail" if plan.action == "failed" else "kept_hot"
                    outcomes.append(
                        Outcome(dataset, day, action, f"copy not current: {plan.detail}", len(hot))
                    )
                    continue
                kept_meters = holds.held_meters(day_holds, day)
                count = len(_going(table, hot, kept_meters))
                _log_meters_held(conn, table, day, day_holds, kept_meters, len(hot) - count, True, run_id)
                state.log(
                    conn,
                    dataset,
                    day,
                    "delete_hot",
                    f"age {age_days(day, today)} d",
                    count,
                    None,
                    True,
                    run_id,
                )
                conn.commit()
                outcomes.append(
                    Outcome(dataset, day, "would delete hot", f"age {age_days(day, today)} d", count)
                )
                continue
            try:
                outcome = delete_hot_day(conn, lake, table, day, day_holds, now, run_id)
                conn.commit()
            except Exception as err:  # noqa: BLE001 - one day's failure must not stop the others: reported
                conn.rollback()
                state.log(
                    conn, dataset, day, "failed", f"hot rows kept: {type(err).__name__}: {err}", run_id=run_id
                )
                conn.commit()
                outcome = Outcome(dataset, day, "failed", f"hot rows kept: {type(err).__name__}: {err}")
            outcomes.append(outcome)
    return outcomes


def expire_copies(
    conn: psycopg.Connection,
    lake: Lake,
    policy: Policy,
    today: date,
    dry_run: bool = False,
    run_id: str | None = None,
) -> list[Outcome]:
    """Lake copies past `expire_days` (only where a dataset sets it), unless held."""
    outcomes: list[Outcome] = []
    for dataset in TIERED_DATASETS:
        ages = policy.tier_ages(dataset)
        if ages.expire_days is None:
            continue
        cutoff = today - timedelta(days=ages.expire_days)
        for day_state in state.days(conn, dataset, date.min, cutoff):
            if not day_state.hot_gone():
                continue  # still hot (restored or never cleaned): the hot window decides first
            if holding(holds.covering(conn, dataset, day_state.day, day_state.day), dataset):
                outcomes.append(Outcome(dataset, day_state.day, "held", "copy kept: legal hold"))
                continue
            action = "would expire" if dry_run else "expired"
            if not dry_run:
                try:
                    lake.delete(day_state.object_key)
                    lake.delete(day_state.manifest_key)
                except ObjectLockedError as err:
                    outcomes.append(Outcome(dataset, day_state.day, "held", str(err)))
                    continue
                state.forget(conn, dataset, day_state.day)
            state.log(
                conn,
                dataset,
                day_state.day,
                "expire",
                f"age >= {ages.expire_days} d",
                day_state.row_count,
                day_state.bytes,
                dry_run,
                run_id,
            )
            conn.commit()
            outcomes.append(
                Outcome(
                    dataset, day_state.day, action, day_state.object_key, day_state.row_count, day_state.bytes
                )
            )
    return outcomes


def expire_lake_days(
    conn: psycopg.Connection,
    lake: Lake,
    dataset: str,
    prefix: str,
    today: date,
    ia_days: int | None,
    days: int | None,
    dry_run: bool,
    run_id: str | None,
    source: str | None = None,
    aged_by_write: bool = False,
) -> list[Outcome]:
    """Day folders under `prefix` (raw batches, dated reports): to STANDARD_IA after `ia_days`,
    deleted after `days`. A folder is kept whole while a hold on `dataset` covers its days, or (raw
    batches of `source`) while a hold on that source starts on or before its arrival day: a batch
    holds data of its arrival day and earlier. A folder ages from its last day, or with
    `aged_by_write` from when its newest object was written: a report is dated by the days it is
    about, and one made today of last spring's backfill is as new as the bucket's rule counts it."""
    outcomes: list[Outcome] = []
    done = {
        d
        for (d,) in conn.execute(
            "SELECT day FROM ops.lifecycle_log WHERE dataset = %s AND action = 'moved_ia' AND NOT dry_run",
            (prefix,),
        ).fetchall()
    }
    for day_prefix in lake.list_day_prefixes(prefix):
        first, last = day_span(day_prefix)
        written = lake.last_written(day_prefix) if aged_by_write else None
        age = age_days(written.date() if written else last, today)
        expire = days is not None and age >= days
        to_ia = not expire and ia_days is not None and age >= ia_days and last not in done
        if not (expire or to_ia):
            continue
        held = (
            holding(holds.covering_raw(conn, source, first, last), source)
            if source is not None
            else holds.covering(conn, dataset, first, last)
        )
        if held:
            detail = f"{day_prefix} kept: legal hold {', '.join(sorted({str(h.hold_id) for h in held}))}"
            outcomes.append(Outcome(dataset, last, "held", detail))
            continue
        objects = lake.list_sizes(day_prefix)
        if to_ia:  # only what is still in STANDARD (a bucket rule may have moved some already)
            objects = [o for o in objects if o[2] == "STANDARD"]
        action = (
            ("would expire" if dry_run else "expired")
            if expire
            else ("would move to IA" if dry_run else "moved to IA")
        )
        if not dry_run:
            try:
                for key, _, _ in objects:
                    if expire:
                        lake.delete(key)
                    else:
                        before = lake.head(key)
                        after = lake.set_storage_class(
                            key, "STANDARD_IA", before.version_id if before else None
                        )
                        if before and before.version_id and after.version_id != before.version_id:
                            lake.delete_version(key, before.version_id)
            except ObjectLockedError as err:
                outcomes.append(Outcome(dataset, last, "held", str(err)))
                continue
        state.log(
            conn,
            prefix,
            last,
            "expired" if expire else "moved_ia",
            day_prefix,
            len(objects),
            None,
            dry_run,
            run_id,
        )
        conn.commit()
        outcomes.append(Outcome(dataset, last, action, day_prefix, len(objects)))
    return outcomes


def _hold_clause(dataset: str, day_expr: str, meter_of: str | None) -> str:
    """No active hold on `dataset` (or all) covers the row's day: a dataset-wide hold keeps every row of
    it, a meter's hold only the rows `meter_of` says are its meter's (none where the table names no
    meter)."""
    meter = f"h.meter_id IS NULL OR ({meter_of})" if meter_of else "h.meter_id IS NULL"
    return (
        "NOT EXISTS (SELECT 1 FROM ops.legal_holds h WHERE h.released_at IS NULL "
        f"AND h.dataset IN ('{dataset}', '{holds.ALL}') AND ({day_expr})::date BETWEEN h.first_day AND h.last_day "
        f"AND ({meter}))"
    )


def expire_rows(
    conn: psycopg.Connection,
    dataset: str,
    table: str,
    time_expr: str,
    eligible: str,
    meter_of: str | None,
    days: int,
    today: date,
    dry_run: bool,
    run_id: str | None,
) -> Outcome:
    """Rows of `table` (as `t`) older than `days` (by `time_expr`), unless a hold keeps them: one on the
    dataset covering their day, or a meter's covering it whose meter the row is (`meter_of`)."""
    where = f"{eligible} AND ({time_expr})::date < %(cutoff)s::date AND {_hold_clause(dataset, time_expr, meter_of)}"
    params = {"cutoff": today - timedelta(days=days - 1)}
    if dry_run:
        row = conn.execute(f"SELECT count(*) FROM {table} AS t WHERE {where}", params).fetchone()
        count = int(row[0]) if row else 0
    else:
        count = int(conn.execute(f"DELETE FROM {table} AS t WHERE {where}", params).rowcount)
    if count:
        state.log(
            conn, dataset, None, "expired", f"{table}: rows older than {days} d", count, None, dry_run, run_id
        )
    conn.commit()
    return Outcome(
        dataset, today, ("would expire" if dry_run else "expired") if count else "nothing due", table, count
    )


def apply(
    conn: psycopg.Connection,
    lake: Lake,
    policy: Policy,
    today: date,
    now: datetime,
    dry_run: bool = False,
    run_id: str | None = None,
    landing_dir: Path | None = None,
) -> Report:
    """The weekly retention pass over every dataset (and the landing directory's files, given one)."""
    outcomes = clean_hot(conn, lake, policy, today, now, dry_run, run_id)
    outcomes += expire_copies(conn, lake, policy, today, dry_run, run_id)
    for source in RAW_SOURCES:
        outcomes += expire_lake_days(
            conn,
            lake,
            "raw",
            f"raw/{source}/",
            today,
            policy.raw.ia_days,
            policy.raw.days,
            dry_run,
            run_id,
            source,
        )
    if policy.reports_days is not None:
        outcomes += expire_lake_days(
            conn,
            lake,
            "reports",
            holds.REPORTS_PREFIX,
            today,
            None,
            policy.reports_days,
            dry_run,
            run_id,
            aged_by_write=True,
        )
    if policy.quarantine_days is not None:
        outcomes.append(
            expire_rows(
                conn,
                "quarantine",
                QUARANTINE,
                "(quarantined_at AT TIME ZONE 'UTC')::date",
                "true",
                QUARANTINE_METER,
                policy.quarantine_days,
                today,
                dry_run,
                run_id,
            )
        )
    if policy.ops_days is not None:
        for table, time_expr, eligible in OPS_TABLES:
            meter_of = OPS_TABLE_METERS.get(table)
            outcomes.append(
                expire_rows(
                    conn, "ops", table, time_expr, eligible, meter_of, policy.ops_days, today, dry_run, run_id
                )
            )
    if policy.landing_days is not None and landing_dir is not None:
        outcomes += expire_landing_files(
            conn, lake, landing_dir, RAW_SOURCES, today, policy.landing_days, dry_run, run_id
        )
    return Report(outcomes, dry_run)
