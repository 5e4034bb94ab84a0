"""`metrify run`: ingest everything waiting, then materialise the downstream graph for the days touched.

The same jobs the sensors and schedules launch, executed in this process on the local instance (so
the runs show in the UI): one ingest run per landing file the ledger does not hold yet, a Kafka drain
when Kafka is configured, then, per run of consecutive days touched, one `refresh_job` run (anomaly
scores, enrichment, dbt marts) and one `daily_job` run (archive, report). The days touched are those
of the new batches and, from the second `metrify run` of an instance on, every day stamped in
`ops.touched_days` since the last: batches the daemon or the API ingested meanwhile, and days a
reviewer's decision touched again; on the first, the days stamped before it that no refresh has
rebuilt since (`storage/rebuilt.py`). Before the first scoring it trains the anomaly model
(`weekly_job`).

An ingest run that fails does not stop the others: it is in the summary, and the next `metrify run`
ingests that landing file or Kafka range again (it is not in the ledger). A downstream run that fails
does not stop the others either; it is in the summary, and its alert (the run_failure condition of
its job and days, `run_alerts`) is what the next `metrify run` reads to run that job for those days
again, until a run of them succeeds (which resolves the alert) or a person resolves it. Only
`daily_job` waits: over days whose `refresh_job` failed it is skipped (its forecast reads the
readings refresh_job validates), and it runs after each owed refresh_job, for its days. A second
`metrify run` with nothing new and nothing failed does nothing.

Those alerts are complete before the owed runs are read: a failed run whose alert could not be
recorded when it ended (PostgreSQL down then) is recorded first, by what the daemon's
`run_alerts_reconcile_sensor` does (`run_alerts.reconcile`, from this command's own cursor), so a
deployment without the daemon runs it again too.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import psycopg

from metrify_assets.contracts import CONTRACTS, METER_REGISTRY_FILE
from metrify_assets.env import Settings
from metrify_assets.grid.area_history import area_changes, area_warnings
from metrify_assets.grid.areas import DEFAULT_AREA
from metrify_assets.ingestion.landing import LandedFile, list_landed
from metrify_assets.ingestion.sensors import BATCH_TAG, ingest_job_name, landing_run_config
from metrify_assets.late_days import DayRow, settled_cursor
from metrify_assets.meters.registry import registry_job, unloaded_version
from metrify_assets.orchestration.instance import RunFailedError, execute_job
from metrify_assets.partitions import TRIGGER_TAG, contiguous_ranges, overlaps, partition_range_tags
from metrify_assets.resources import PostgresResource
from metrify_assets.resources.build import kafka_resource, postgres_resource
from metrify_assets.resources.lake import Lake
from metrify_assets.run_alerts import ReconcileCursor, day_range, failed_days, reconcile
from metrify_assets.schedules import TRAINING_ASSETS
from metrify_assets.storage import rebuilt
from metrify_assets.storage.writes import RecordCounts, ledger_batch_ids, record_counts

DOWNSTREAM_JOBS = ("refresh_job", "daily_job")
JobDays = tuple[str, date, date]  # a job and the first and last day of its run


@dataclass
class RunSummary:
    """What `metrify run` did: batches ingested and their records per source, the day ranges materialised, the jobs that ran, the
    failed runs it ran again, the runs that failed (each with its error), which of those the next
    `metrify run` runs again (the downstream ones: the model training is not owed), the daily_job
    runs skipped because refresh_job failed for their days, the Kafka sources not drained
    because their brokers could not be reached (each with the error), and the failed runs of before
    whose alerts it recorded (`record_missed_alerts`)."""

    batch_ids: list[str] = field(default_factory=list)
    records: dict[str, RecordCounts] = field(default_factory=dict)  # per source, over `batch_ids`
    day_ranges: list[tuple[date, date]] = field(default_factory=list)
    jobs: list[str] = field(default_factory=list)
    trained_model: bool = False
    training_failed: bool = False
    seconds: float = 0.0  # from the pipeline's start: the work, not the command's start-up
    startup_seconds: float = 0.0  # the command's start-up before it (Python, Dagster, dbt, GX, defs)
    retried: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    owed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    unread: list[str] = field(default_factory=list)
    alerts_recorded: list[str] = field(default_factory=list)
    landing_missing: str | None = None  # why no landing file could be read (`missing_landing_dir`)
    # ERROR-severity checks of its runs that failed, "asset check: headline" (`checks.FailedCheck`)
    failed_checks: list[str] = field(default_factory=list)
    # Grid nodes of its days (or the month before) judged under another area than the one applied now
    # (`grid.area_history.area_warnings`): grid_stability logs them among its run's log lines; the summary repeats them.
    grid_area_warnings: list[str] = field(default_factory=list)

    @property
    def idle(self) -> bool:
        """Nothing was waiting and nothing was owed: no batch, day, job, retry, failure or alert."""
        return not (
            self.batch_ids
            or self.day_ranges
            or self.jobs
            or self.retried
            or self.failed
            or self.unread
            or self.alerts_recorded
            or self.trained_model
            or self.training_failed
        )


@dataclass(frozen=True)
class Progress:
    """Callbacks the CLI draws with; all optional."""

    on_plan: Callable[[str, int], None] = lambda stage, total: None
    on_step: Callable[[str], None] = lambda description: None
    on_note: Callable[[str], None] = lambda text: None


def pending_files(conn: psycopg.Connection, landing_dir: Path) -> list[LandedFile]:
    """Landing files whose batch the ledger does not hold, oldest first per source (the ledger is
    asked for these files' batch ids only, not read whole)."""
    landed = [f for source in CONTRACTS for f in list_landed(landing_dir, source)]
    done = ledger_batch_ids(conn, [f.batch_id for f in landed])
    return [f for f in landed if f.batch_id not in done]


def missing_landing_dir(conn: psycopg.Connection, landing_dir: Path, named: bool, kafka: bool) -> str | None:
    """Why no landing file can be read, when the landing directory does not exist though it should:
    a mistyped path reads as "nothing waiting". A fresh home has none until the first file is landed
    (`metrify simulate`, `metrify ingest`, the API create it), so the default directory is missing
    normally, unless the ledger holds batches landed there. `named`: METRIFY_LANDING_DIR names it;
    `kafka`: Kafka is configured (then the ledger is not asked: its rows are mostly Kafka batches and
    finding a landed one could read it whole)."""
    if landing_dir.is_dir():
        return None
    what = "is not a directory" if landing_dir.exists() else "does not exist"
    if named:
        return (
            f"the landing directory {landing_dir} (METRIFY_LANDING_DIR) {what}: no landing file can be "
            "read from it, so none is counted as waiting; check the path (`metrify simulate`, `metrify "
            "ingest` and the API create it when they land a file)"
        )
    if kafka:
        return None
    landed = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM ops.ingest_ledger WHERE origin = 'landing')"
    ).fetchone()
    if landed is None or not landed[0]:
        return None
    return (
        f"the landing directory {landing_dir} {what}, though the ledger holds batches landed there: no "
        "landing file can be read, so none is counted as waiting; check METRIFY_HOME and "
        "METRIFY_LANDING_DIR"
    )


def ingest_files(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    files: list[LandedFile],
    on_batch: Callable[[LandedFile], None] | None = None,
    trigger: str = "cli",
) -> dict[str, str]:
    """Run the ingest job once per landing file, as the landing sensor would (replays are idempotent).
    A failed run (a bug, or an outage past its step's retries) does not stop the other files: the
    failures are returned (batch id -> error), and the file, not in the ledger, is ingested again by
    the next `metrify run` or landing sensor tick."""
    failed: dict[str, str] = {}
    for landed in files:
        try:
            execute_job(
                defs,
                ingest_job_name(landed.source),
                instance,
                run_config=landing_run_config(landed.source, landed),
                tags={BATCH_TAG: landed.batch_id, "metrify/source": landed.source, TRIGGER_TAG: trigger},
            )
        except RunFailedError as err:
            failed[landed.batch_id] = str(err)
        else:
            if on_batch:
                on_batch(landed)
    return failed


# The newest `ops.touched_days.seq` a `metrify run` has materialised, in the Dagster instance's
# key-value store (beside the runs it launched).
SEQ_CURSOR = "metrify/run/ingest_days_seq"


def first_run_days(conn: psycopg.Connection) -> dict[date, set[str]]:
    """The days stamped before a first `metrify run` whose rebuild is owed (`storage.rebuilt.owed`),
    with every source that touched each: every day ever stamped is read, once per instance."""
    stamped: dict[date, set[str]] = {}
    for day, source in conn.execute("SELECT DISTINCT day, source FROM ops.touched_days WHERE stored"):
        stamped.setdefault(day, set()).add(source)
    return {day: stamped[day] for day in rebuilt.owed(conn, list(stamped))}


@dataclass(frozen=True)
class Touched:
    """The days to materialise, with the sources that touched each, and the next `metrify run`'s
    `after_seq`."""

    days: dict[date, set[str]]
    next_seq: int


def touched_days(
    settings: Settings, batch_ids: list[str], after_seq: int | None = None, first_run: bool = False
) -> Touched:
    """The days the batches touched, and those stamped after `after_seq` (batches ingested since, by
    the daemon or the API, and days a reviewer's decision touched again: `storage.days.retouch_day`).
    A batch that stored nothing (every record quarantined) touched no day: nothing new to rebuild.

    On a `first_run` the days stamped before it whose rebuild is still owed come too
    (`storage.rebuilt.owed`: no refresh rebuilt them since they were touched): a `metrify kafka drain`,
    the daemon or the API before the first `metrify run` left days no run would take otherwise.

    `next_seq` is the newest seq on a first run (`after_seq` None); after that, the highest stamped
    after `after_seq` with no gap before it that may yet fill. A seq is taken when a transaction stamps
    a day and seen when it commits, so a batch still being ingested holds a lower one than a batch or
    decision committed meanwhile: the cursor waits at that gap as `late_days_sensor`'s does
    (`settled_cursor`), and the days past it are read again next time. One read serves both."""
    with postgres_resource(settings).connect() as conn:
        row = conn.execute("SELECT now(), coalesce(max(seq), 0) FROM ops.touched_days").fetchone()
        found = conn.execute(
            "SELECT seq, day, recorded_at, source, stored FROM ops.touched_days "
            "WHERE batch_id = ANY(%s) OR seq > %s ORDER BY seq",
            (batch_ids, after_seq),
        ).fetchall()
        before = first_run_days(conn) if first_run else {}
    assert row is not None  # an aggregate always answers a row
    now, newest = row
    days: dict[date, set[str]] = {}
    for _, day, _, source, stored in found:
        if stored:  # a batch that stored nothing brought nothing to rebuild
            days.setdefault(day, set()).add(source)
    if after_seq is None:
        for day, sources in before.items():
            days.setdefault(day, set()).update(sources)
        return Touched(days, int(newest))
    stamped = [DayRow(seq, day, at) for seq, day, at, _, _ in found if seq > after_seq]
    return Touched(days, settled_cursor(stamped, after_seq, now))


# Where `metrify run` last looked for the finished runs whose alerts were not settled
# (`run_alerts.ReconcileCursor`, as JSON), in the instance's key-value store.
RECONCILE_CURSOR = "metrify/run/reconcile_cursor"
# A bound on the reads of one `record_missed_alerts` (200 new runs each): a cursor that stopped moving
# ends it first.
RECONCILE_READS = 500


def record_missed_alerts(
    defs: dg.Definitions, instance: dg.DagsterInstance, postgres: PostgresResource
) -> list[str]:
    """What the daemon's `run_alerts_reconcile_sensor` does, for a deployment without the daemon:
    settle the runs that finished since the last `metrify run` (a day back on the first) whose alerts
    were not (`run_alerts.reconcile`). A failed run whose alert could not be recorded when it ended
    (PostgreSQL down, stopped mid-run) gets its `run_failure` alert now, so `owed_runs` runs it again;
    a success resolves what it covers. Reads until every finished run is settled, then keeps the
    cursor once the alerts are committed. What was recorded (a run id, with the run that made it good
    if one did)."""
    now = datetime.now(UTC)
    stored = instance.run_storage.get_cursor_values({RECONCILE_CURSOR}).get(RECONCILE_CURSOR)
    cursor = ReconcileCursor.loads(stored, now)
    repository = defs.get_repository_def()
    recorded: list[str] = []
    with postgres.connect() as conn:
        for _ in range(RECONCILE_READS):
            moved, found = reconcile(conn, instance, cursor, repository, now=now)
            recorded += found
            if moved == cursor:
                break
            cursor = moved
    instance.run_storage.set_cursor_values({RECONCILE_CURSOR: cursor.dumps()})
    return recorded


def owed_runs(settings: Settings) -> list[JobDays]:
    """The downstream runs that failed for good and no run has made up for yet (`failed_days`)."""
    with postgres_resource(settings).connect() as conn:
        owed = failed_days(conn, DOWNSTREAM_JOBS)
    return [(job, *day_range(days)) for job, days in owed]


@dataclass(frozen=True)
class Plan:
    """The downstream runs of one `metrify run`: each job over each new range, the owed runs to run
    again (those no other planned run of the same job covers), and `daily_job` over the days of each
    owed `refresh_job` (`follow`: the daily job of days whose refresh failed was skipped, and is owed
    by no alert of its own)."""

    new: list[JobDays]
    owed: list[JobDays]
    follow: list[JobDays] = field(default_factory=list)

    @property
    def runs(self) -> list[JobDays]:
        """Every `refresh_job` before any `daily_job`, which reads what refresh_job built (the
        forecast's readings)."""
        planned = [*self.new, *self.owed, *self.follow]
        return [r for r in planned if r[0] == "refresh_job"] + [r for r in planned if r[0] == "daily_job"]


def contains(outer: JobDays, inner: JobDays) -> bool:
    """Whether a run of `outer` rebuilds everything a run of `inner` would: same job, its days included."""
    return outer[0] == inner[0] and outer[1] <= inner[1] and inner[2] <= outer[2]


def plan_runs(day_ranges: list[tuple[date, date]], owed: Sequence[JobDays]) -> Plan:
    """Each job over each new range, then each owed run that neither a new run nor another owed run
    covers (open alerts for 11-28..11-30 and for 11-29 are one run), oldest days first, and a
    `daily_job` over each owed `refresh_job`'s days that no planned `daily_job` covers."""
    new = [(job, first, last) for first, last in day_ranges for job in DOWNSTREAM_JOBS]
    kept: list[JobDays] = []
    for run in sorted(owed, key=lambda r: r[1] - r[2]):  # the widest first: it covers the others
        if not any(contains(other, run) for other in (*new, *kept)):
            kept.append(run)
    kept.sort(key=lambda r: (r[1], r[2], r[0]))
    follow = [
        ("daily_job", first, last)
        for job, first, last in kept
        if job == "refresh_job"
        and not any(contains(other, ("daily_job", first, last)) for other in (*new, *kept))
    ]
    return Plan(new, kept, follow)


def materialise_days(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    settings: Settings,
    days: dict[date, set[str]],
    progress: Progress,
    trigger: str,
    owed: Sequence[JobDays] = (),
) -> RunSummary:
    """Train the anomaly model if meter readings came and there is none yet, then the downstream jobs
    per run of consecutive days, and the `owed` runs again. A failed run is in the summary's `failed`
    and the others go on, except a `daily_job` over days whose `refresh_job` failed in this command
    (`skipped`): it would build the forecast and report from missing readings, and it runs after
    that refresh_job succeeds (`Plan.follow`)."""
    summary = RunSummary(day_ranges=contiguous_ranges(list(days)))
    plan = plan_runs(summary.day_ranges, owed)
    for job, first, last in plan.owed:
        summary.retried.append(f"{job} {first}..{last}")
        progress.on_note(f"{job} failed for {first}..{last} on an earlier run: running it again")
    from metrify_assets.meters.anomaly.store import CURRENT_KEY  # pandas: not for `metrify status`

    meters_came = any("meter_readings" in sources for sources in days.values())
    needs_model = meters_came and not Lake(settings.lake_url).exists(CURRENT_KEY)
    progress.on_plan("materialising", len(plan.runs) + int(needs_model))
    if needs_model:
        progress.on_step("training the anomaly model (weekly_job)")
        if attempt(summary, defs, "weekly_job", instance, {TRIGGER_TAG: trigger}, list(TRAINING_ASSETS)):
            summary.trained_model = True
            summary.jobs.append("weekly_job")
        else:
            summary.training_failed = True
    refresh_failed: list[tuple[date, date]] = []
    for job, first, last in plan.runs:
        name = f"{job} {first}..{last}"
        if job == "daily_job" and any(overlaps((first, last), days) for days in refresh_failed):
            progress.on_step(f"{name} skipped")
            summary.skipped.append(name)
            continue
        progress.on_step(name)
        tags = {**partition_range_tags(first, last), TRIGGER_TAG: trigger}
        if attempt(summary, defs, job, instance, tags, owed_as=name):
            summary.jobs.append(name)
        elif job == "refresh_job":
            refresh_failed.append((first, last))
    return summary


def attempt(
    summary: RunSummary,
    defs: dg.Definitions,
    job: str,
    instance: dg.DagsterInstance,
    tags: dict[str, str],
    asset_selection: list[str] | None = None,
    owed_as: str | None = None,
) -> bool:
    """Execute `job`; a failed run (its alert recorded by `execute_job`, or if it cannot be, by the next
    `metrify run`'s `record_missed_alerts`) goes into `summary.failed`, and into `summary.owed` as
    `owed_as` when the next `metrify run` runs it again."""
    try:
        execute_job(defs, job, instance, tags=tags, asset_selection=asset_selection)
    except RunFailedError as err:
        summary.failed.append(str(err))
        if owed_as:
            summary.owed.append(owed_as)
        return False
    return True


def load_changed_registry(
    defs: dg.Definitions, instance: dg.DagsterInstance, landing_dir: Path, progress: Progress, trigger: str
) -> tuple[list[str], list[str]]:
    """Load the meter registry file first when it changed since it was last loaded (the jobs that ran,
    the errors): ingestion places readings on their meters' local days from `ops.meters`. A registry
    that fails to load does not stop the ingest: readings go on the days the registry held."""
    if unloaded_version(landing_dir, instance) is None:
        return [], []
    progress.on_plan("loading the meter registry", 1)
    try:
        execute_job(defs, registry_job.name, instance, tags={TRIGGER_TAG: trigger})
    except RunFailedError as err:
        return [], [str(err)]
    progress.on_step(f"loaded {landing_dir / METER_REGISTRY_FILE}")
    return [registry_job.name], []


def grid_area_warnings(
    conn: psycopg.Connection, settings: Settings, day_ranges: list[tuple[date, date]]
) -> list[str]:
    """The warnings of `grid.area_history.area_warnings` for the days materialised: their nodes' hours, and
    those of the month before, judged under another area than the deployment's (`Settings.grid_area`)."""
    applied = settings.grid_area or DEFAULT_AREA
    warnings: list[str] = []
    for first, last in day_ranges:
        warnings += [
            w
            for w in area_warnings(
                area_changes(conn, first, last, lambda node: applied), settings.grid_area_from
            )
            if w not in warnings
        ]
    return warnings


def run_pipeline(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    settings: Settings,
    progress: Progress | None = None,
    trigger: str = "cli",
) -> RunSummary:
    """Ingest what is waiting (landing files, Kafka), then materialise the days it touched and run
    the downstream runs that failed before again."""
    began = time.monotonic()
    progress = progress or Progress()
    postgres = postgres_resource(settings)
    # First the alerts of runs that ended while PostgreSQL was away: what is owed is read from them.
    missed = record_missed_alerts(defs, instance, postgres)
    for text in missed:
        progress.on_note(f"run {text} failed earlier and its alert had not been recorded: recorded now")
    registry_ran, registry_failed = load_changed_registry(
        defs, instance, settings.landing_dir, progress, trigger
    )
    with postgres.connect() as conn:
        files = pending_files(conn, settings.landing_dir)
        landing_missing = missing_landing_dir(
            conn, settings.landing_dir, settings.landing_dir_named, settings.uses_kafka
        )
    progress.on_plan("ingesting landing files", len(files))

    def ingested(landed: LandedFile) -> None:
        progress.on_step(f"ingested {landed.path.name}")

    failed = ingest_files(defs, instance, files, ingested, trigger)
    batch_ids = [f.batch_id for f in files if f.batch_id not in failed]
    unread: list[str] = []  # Kafka sources whose brokers could not be reached
    if settings.uses_kafka:
        from metrify_assets.orchestration.drain import drain  # kafka-python: not for `metrify status`

        kafka = kafka_resource(settings)
        progress.on_plan("draining Kafka", 0)
        drained: list[str] = []

        def on_drained(batch_id: str) -> None:
            drained.append(batch_id)
            progress.on_step(f"ingested {batch_id}")

        drained_summary = drain(defs, instance, kafka, postgres, on_batch=on_drained, trigger=trigger)
        failed |= drained_summary.failed
        unread = [f"{source}: {error}" for source, error in drained_summary.unread.items()]
        batch_ids += drained
    # Days stamped since the last `metrify run` are materialised too (on the first, those stamped before
    # it whose rebuild is owed). One read gives the days and the next cursor.
    seen = instance.run_storage.get_cursor_values({SEQ_CURSOR}).get(SEQ_CURSOR)
    touched = touched_days(settings, batch_ids, int(seen) if seen else None, first_run=not seen)
    summary = materialise_days(defs, instance, settings, touched.days, progress, trigger, owed_runs(settings))
    instance.run_storage.set_cursor_values({SEQ_CURSOR: str(touched.next_seq)})
    summary.batch_ids = batch_ids
    with postgres.connect() as conn:
        summary.records = record_counts(conn, batch_ids)
        summary.grid_area_warnings = grid_area_warnings(conn, settings, summary.day_ranges)
    # The batches whose ingest failed: their days are materialised once a later ingest succeeds.
    summary.failed[:0] = registry_failed + list(failed.values())
    summary.jobs[:0] = registry_ran
    summary.unread = unread
    summary.alerts_recorded = missed
    summary.landing_missing = landing_missing
    summary.owed[:0] = [f"ingest of {batch_id}" for batch_id in failed]
    summary.seconds = round(time.monotonic() - began, 1)
    return summary
