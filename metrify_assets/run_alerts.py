"""Runs that failed for good become alerts: a row in `ops.run_alerts`, an error in the daemon log, and
a standing `run_failure` condition in `ops.alerts` (delivered to people by `alerts.delivery`).

A failed run the daemon is about to re-run (`dagster/will_retry`) is not an alert yet; its last
attempt is. The condition is the job (or, for an ingest run, the job's batch), the days
(partitions) the run was for and the part of the job it selected, if not all of it: the same job
failing every hour for the same days is one alert, its training and its lifecycle failing are two. A
successful run of the same job (and batch) resolves it only when its days cover the failed ones (a
failure without partitions: any success of the job) and it selected at least the failed run's assets
(a run of the whole job, or one that names every asset of it as the UI's "Materialize all" does: all
of them), so the lifecycle part of `weekly_job` succeeding does not
resolve its failed model training. A late-days run that failed for an old day is
therefore not resolved by the next hourly run for today: it stays open until a run rebuilds that day,
or a person resolves it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import psycopg

from metrify_assets.alerts.store import Alert, raise_alert, resolve_condition
from metrify_assets.errors import bare_error_message, root_error
from metrify_assets.ingestion.sensors import BATCH_TAG, run_ended_at
from metrify_assets.resources import PostgresResource

WILL_RETRY_TAG = "dagster/will_retry"
PARTITION_TAG = "dagster/partition"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"

Days = tuple[str, str]  # the first and last partition key of a run (the shared day partitions)
Assets = tuple[str, ...]  # the assets a run selected, sorted; None: the whole job
JobAssets = frozenset[dg.AssetKey]  # every asset a job materialises


def run_days(tags: Mapping[str, str]) -> Days | None:
    """The partitions a run was for, from its tags (a range, or one partition); None: unpartitioned."""
    start, end = tags.get(RANGE_START_TAG), tags.get(RANGE_END_TAG)
    if start and end:
        return start, end
    single = tags.get(PARTITION_TAG)
    return (single, single) if single else None


def job_assets(repository: dg.RepositoryDefinition | None, job_name: str) -> JobAssets | None:
    """Every asset `job_name` materialises, or None when `repository` does not hold the job."""
    if repository is None or not repository.has_job(job_name):
        return None
    return frozenset(repository.get_job(job_name).asset_layer.selected_asset_keys)


def run_assets(run: dg.DagsterRun, whole: JobAssets | None = None) -> Assets | None:
    """The assets a run selected (None: the whole job; an op job's run selects none). A selection of
    all of `whole` (the job's assets) is the whole job: the UI's "Materialize all" on a job's page
    sends every asset by name, and Dagster keeps that selection on the run."""
    if not run.asset_selection or (whole is not None and run.asset_selection >= whole):
        return None
    return tuple(sorted(key.to_user_string() for key in run.asset_selection))


def selects(success: Assets | None, failure: Assets | None) -> bool:
    """Whether a successful run's selection includes every asset of a failed run of the same job."""
    if success is None:
        return True
    return failure is not None and set(failure) <= set(success)


def covers(success: Days | None, failure: Days | None) -> bool:
    """Whether a successful run for `success` rebuilt everything a failed run for `failure` was for.

    Keys are the shared day partitions (ISO dates), which order as strings. A failure without
    partitions is covered by any success; a partitioned one only by a success whose range contains it.
    """
    if failure is None:
        return True
    if success is None:
        return False
    return success[0] <= failure[0] and failure[1] <= success[1]


def day_range(days: Days) -> tuple[date, date]:
    """`days` (ISO partition keys) as the dates they name."""
    return date.fromisoformat(days[0]), date.fromisoformat(days[1])


def days_text(days: Days) -> str:
    return days[0] if days[0] == days[1] else f"{days[0]}..{days[1]}"


@dataclass(frozen=True)
class RunAlert:
    run_id: str
    job_name: str
    batch_id: str | None
    step_key: str | None
    error_type: str
    message: str
    days: Days | None = None  # the partitions (first, last) the run was for
    assets: Assets | None = None  # the assets the run selected; None: the whole job

    @property
    def dedup_key(self) -> str:
        return condition_key(self.job_name, self.batch_id, self.days, self.assets)

    @property
    def subject(self) -> str:
        batch = f" (batch {self.batch_id})" if self.batch_id else ""
        days = f" [{days_text(self.days)}]" if self.days else ""
        part = f" for {', '.join(self.assets)}" if self.assets else ""
        return f"{self.job_name}{batch}{days}{part}"

    @property
    def text(self) -> str:
        return f"run {self.run_id} of {self.subject} failed: {self.error_type}: {self.message}"


def run_alert(
    run: dg.DagsterRun, step_failures: Sequence[dg.DagsterEvent], whole: JobAssets | None = None
) -> RunAlert | None:
    """The alert a failed run raises (None while the daemon will still retry it); `whole`: the job's
    assets (`run_assets`). Pure: unit-tested."""
    if run.tags.get(WILL_RETRY_TAG) == "true":
        return None
    error = next(
        (e.step_failure_data.error for e in step_failures if e.step_failure_data.error is not None), None
    )
    error = root_error(error) if error is not None else None
    first = step_failures[0] if step_failures else None
    return RunAlert(
        run_id=run.run_id,
        job_name=run.job_name,
        batch_id=run.tags.get(BATCH_TAG),
        step_key=first.step_key if first else None,
        error_type=(error.cls_name or "Error") if error else "RunFailure",
        message=(
            bare_error_message(error) if error else "the run failed outside its steps (see the run log)"
        )[:2000],
        days=run_days(run.tags),
        assets=run_assets(run, whole),
    )


def condition_key(
    job_name: str, batch_id: str | None, days: Days | None = None, assets: Assets | None = None
) -> str:
    """The dedup key of a job's (or an ingest batch's) failure condition for its days in `ops.alerts`,
    and for the part of the job the run selected: the failures of two parts are two conditions (one
    alert would keep the last one's assets, and a success of that part would resolve both)."""
    return (
        f"run_failure:{job_name}"
        + (f":{batch_id}" if batch_id else "")
        + (f"@{days_text(days)}" if days else "")
        + (f"[{','.join(assets)}]" if assets else "")
    )


def insert_row(conn: psycopg.Connection, alert: RunAlert) -> bool:
    """The run's row in `ops.run_alerts`, once per run; whether it is new."""
    return bool(
        conn.execute(
            "INSERT INTO ops.run_alerts (run_id, job_name, batch_id, step_key, error_type, message) "
            "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (run_id) DO NOTHING",
            (alert.run_id, alert.job_name, alert.batch_id, alert.step_key, alert.error_type, alert.message),
        ).rowcount
    )


def record(conn: psycopg.Connection, alert: RunAlert) -> None:
    """The run's row in `ops.run_alerts` (once per run) and its job's standing condition."""
    if not insert_row(conn, alert):  # the sensor saw this run before (a restarted daemon): already counted
        return
    raise_alert(
        conn,
        Alert(
            kind="run_failure",
            severity="critical",
            subject=alert.subject,
            dedup_key=alert.dedup_key,
            summary=alert.text,
            details={
                "run_id": alert.run_id,
                "job_name": alert.job_name,
                "batch_id": alert.batch_id,
                "first_partition": alert.days[0] if alert.days else None,
                "last_partition": alert.days[1] if alert.days else None,
                "assets": list(alert.assets) if alert.assets is not None else None,
                "step_key": alert.step_key,
                "error_type": alert.error_type,
            },
        ),
    )


def failed_days(conn: psycopg.Connection, jobs: Sequence[str]) -> list[tuple[str, Days]]:
    """The days each of `jobs` still owes: its open run_failure alerts for days (not for a batch),
    oldest days first. A successful run covering them resolves them, as does a person."""
    rows = conn.execute(
        "SELECT details->>'job_name', details->>'first_partition', details->>'last_partition' "
        "FROM ops.alerts WHERE resolved_at IS NULL AND kind = 'run_failure' "
        "AND details->>'job_name' = ANY(%s) AND details->>'batch_id' IS NULL "
        "AND details->>'first_partition' IS NOT NULL ORDER BY 2, 3, 1",
        (list(jobs),),
    ).fetchall()
    return [(job, (first, last)) for job, first, last in rows]


def resolve_covered(
    conn: psycopg.Connection, run: dg.DagsterRun, whole: JobAssets | None = None, at: datetime | None = None
) -> list[int]:
    """A run succeeded: resolve its job's (and batch's) open run_failure alerts whose days it covers
    (`covers`) and whose assets it selected (`selects`; `whole`: the job's assets); the others stand.
    With `at` (when it succeeded), only alerts last seen before then: a failure after it stands.
    Reads the open alerts of that job only."""
    run_id, job_name, batch_id, days = run.run_id, run.job_name, run.tags.get(BATCH_TAG), run_days(run.tags)
    assets = run_assets(run, whole)
    rows = conn.execute(
        "SELECT dedup_key, details->>'first_partition', details->>'last_partition', details->'assets' "
        "FROM ops.alerts "
        "WHERE resolved_at IS NULL AND kind = 'run_failure' AND details->>'job_name' = %s "
        "AND details->>'batch_id' IS NOT DISTINCT FROM %s",
        (job_name, batch_id),
    ).fetchall()
    done = f"run {run_id} of {job_name} succeeded" + (f" for {days_text(days)}" if days else "")
    resolved = []
    for key, first, last, failed_assets in rows:
        failed = (first, last) if first and last else None
        if covers(days, failed) and selects(assets, tuple(failed_assets) if failed_assets else None):
            alert_id = resolve_condition(conn, key, done, at=at)
            if alert_id is not None:
                resolved.append(alert_id)
    return resolved


def settle(
    conn: psycopg.Connection,
    run: dg.DagsterRun,
    step_failures: Sequence[dg.DagsterEvent],
    whole: JobAssets | None = None,
) -> RunAlert | None:
    """What the two sensors below do for a finished run, for the runs the CLI executes (no daemon may
    be running): a failure is recorded (`record`: once per run, so the sensor seeing it later adds
    nothing), a success resolves the failures it covers, and a canceled run does neither (as for the
    sensors, which see FAILURE and SUCCESS only). The failure's alert, if one was raised."""
    if run.status == dg.DagsterRunStatus.SUCCESS:
        resolve_covered(conn, run, whole)
        return None
    if run.status != dg.DagsterRunStatus.FAILURE:
        return None
    alert = run_alert(run, step_failures, whole)
    if alert is not None:
        record(conn, alert)
    return alert


@dg.run_failure_sensor(
    name="run_failure_alert_sensor",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Records every run that failed for good in ops.run_alerts and logs it as an error.",
)
def run_failure_alert_sensor(context: dg.RunFailureSensorContext, postgres: PostgresResource) -> None:
    run = context.dagster_run
    alert = run_alert(
        run, context.get_step_failure_events(), job_assets(context.repository_def, run.job_name)
    )
    if alert is None:
        return
    with postgres.connect() as conn:
        record(conn, alert)
    context.log.error(alert.text)


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    name="run_success_resolves_alerts",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="A successful run resolves the open run_failure alerts of its job (or ingest batch) for "
    "the days (partitions) it covers.",
)
def run_success_resolves_alerts(context: dg.RunStatusSensorContext, postgres: PostgresResource) -> None:
    run = context.dagster_run
    with postgres.connect() as conn:
        resolved = resolve_covered(conn, run, job_assets(context.repository_def, run.job_name))
    for alert_id in resolved:
        context.log.info(f"alert {alert_id} resolved: {run.job_name} succeeded")


RECONCILE_FIRST_LOOKBACK = timedelta(days=1)  # the first tick's window: a new sensor, or a new instance
RECONCILE_BATCH = 200  # new finished runs settled per tick, oldest first; the cursor keeps the rest
# Each tick reads again the runs updated this long before its cursor. A run's update time is when its
# status event happened (the writing process's clock), not when its row was written, so a run whose
# status lands after a later run's (a worker's clock behind, a slow storage write) sorts before the
# cursor; and a tick's limit can cut between runs updated in the same instant. A run whose status
# lands more than this behind the cursor is still not read.
RECONCILE_OVERLAP = timedelta(minutes=10)


@dataclass(frozen=True)
class ReconcileCursor:
    """Where the reconcile sensor goes on from: the latest update time it settled (`after`) and the
    runs it settled that were updated within `RECONCILE_OVERLAP` before it, which the next tick reads
    again and skips. The sensor's cursor is its JSON (`dumps`)."""

    after: datetime
    settled: frozenset[str] = frozenset()

    @property
    def start(self) -> datetime:
        """Where the next read starts (exclusive): the overlap before `after`."""
        return self.after - RECONCILE_OVERLAP

    def dumps(self) -> str:
        return json.dumps({"after": self.after.isoformat(), "settled": sorted(self.settled)})

    @classmethod
    def first(cls, now: datetime) -> ReconcileCursor:
        """A day back (`RECONCILE_FIRST_LOOKBACK`): where a tick without a cursor starts."""
        return cls(after=now - RECONCILE_FIRST_LOOKBACK)

    @classmethod
    def loads(cls, text: str | None, now: datetime) -> ReconcileCursor:
        """The cursor `text`, or `first`: the first tick, or a cursor that cannot be read (a person's
        edit in the UI)."""
        cursor = cls.parse(text) if text else None
        return cursor if cursor is not None else cls.first(now)

    def window(self, now: datetime) -> str:
        """The runs a tick from this cursor reads, with dates (a first tick's cursor is yesterday's):
        the overlap before the cursor, or on a first tick the lookback and the overlap before now."""
        start = f"runs updated after {self.start:%Y-%m-%d %H:%M:%S} UTC"
        overlap = f"{RECONCILE_OVERLAP.total_seconds() / 60:.0f} minutes"
        if self == ReconcileCursor.first(now):
            days = RECONCILE_FIRST_LOOKBACK.days  # whole days
            lookback = f"{days} day{'' if days == 1 else 's'}"
            return f"{start}: a first tick reads {lookback} and {overlap} back"
        return f"{start}, {overlap} before the cursor's {self.after:%Y-%m-%d %H:%M:%S} UTC"

    @classmethod
    def parse(cls, text: str) -> ReconcileCursor | None:
        """`text` as a cursor: its JSON, or a plain ISO time (the cursor before the overlap, which
        settled nothing); None if it is neither. In UTC, a naive time taken as UTC: the run storage
        compares naive UTC times."""
        try:
            doc = json.loads(text)
        except json.JSONDecodeError:
            doc = {"after": text}
        if not isinstance(doc, dict):
            return None
        after, settled = doc.get("after"), doc.get("settled", [])
        if not (isinstance(after, str) and isinstance(settled, list)):
            return None
        if not all(isinstance(run_id, str) for run_id in settled):
            return None
        try:
            at = datetime.fromisoformat(after)
        except ValueError:
            return None
        at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
        return cls(after=at, settled=frozenset(settled))


def made_good(
    instance: dg.DagsterInstance, failed: dg.RunRecord, alert: RunAlert, whole: JobAssets | None
) -> str | None:
    """The id of a run that succeeded after `failed` ended and covers its alert (`covers`, `selects`),
    or None. By their end times: a run's update time also moves when its tags are edited."""
    failed_at = run_ended_at(failed)
    tags = {BATCH_TAG: alert.batch_id} if alert.batch_id else {}
    later = instance.get_run_records(
        dg.RunsFilter(
            job_name=alert.job_name,
            statuses=[dg.DagsterRunStatus.SUCCESS],
            tags=tags,
            updated_after=failed_at,
        )
    )
    for success in later:
        run = success.dagster_run
        if (
            run_ended_at(success) > failed_at
            and covers(run_days(run.tags), alert.days)
            and selects(run_assets(run, whole), alert.assets)
        ):
            return run.run_id
    return None


def unrecorded(
    conn: psycopg.Connection,
    instance: dg.DagsterInstance,
    failed: Sequence[dg.RunRecord],
    repository: dg.RepositoryDefinition | None,
) -> list[tuple[dg.RunRecord, RunAlert]]:
    """Of the `failed` runs, those `ops.run_alerts` has no row for (PostgreSQL was away when they
    ended), each with the alert it raises; a run the daemon will still retry raises none. One lookup
    for all, then each missed run's step failures."""
    ids = [record.dagster_run.run_id for record in failed]
    rows = conn.execute("SELECT run_id FROM ops.run_alerts WHERE run_id = ANY(%s)", (ids,)).fetchall()
    recorded = {row[0] for row in rows}
    missed = []
    for record in failed:
        run = record.dagster_run
        if run.run_id in recorded:
            continue
        failures = [
            e.dagster_event
            for e in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
            if e.dagster_event is not None
        ]
        alert = run_alert(run, failures, job_assets(repository, run.job_name))
        if alert is not None:
            missed.append((record, alert))
    return missed


def settle_missed(
    conn: psycopg.Connection,
    instance: dg.DagsterInstance,
    finished: dg.RunRecord,
    repository: dg.RepositoryDefinition | None,
) -> str | None:
    """Settle one finished run as its sensor would have: a success resolves what it covers that was
    last seen before it ended; a failed run not in `ops.run_alerts` is recorded, and if a later run
    already made it good, only its row is (the open condition may be a newer failure's). What was
    recorded, for the log, or None."""
    run = finished.dagster_run
    whole = job_assets(repository, run.job_name)
    if run.status == dg.DagsterRunStatus.SUCCESS:
        resolve_covered(conn, run, whole, at=run_ended_at(finished))
        return None
    missed = unrecorded(conn, instance, [finished], repository)
    if not missed:  # its sensor recorded it (the common case costs one lookup), or the daemon re-runs it
        return None
    alert = missed[0][1]
    good = made_good(instance, finished, alert, whole)
    if good is None:
        record(conn, alert)
    else:
        insert_row(conn, alert)
    return run.run_id + (f" (made good by {good})" if good else "")


def reconcile(
    conn: psycopg.Connection,
    instance: dg.DagsterInstance,
    cursor: ReconcileCursor,
    repository: dg.RepositoryDefinition | None,
    limit: int = RECONCILE_BATCH,
    now: datetime | None = None,
) -> tuple[ReconcileCursor, list[str]]:
    """Settle the finished runs updated after `cursor.start` that `cursor` has not settled
    (`settle_missed`), for those whose sensor evaluation failed (PostgreSQL down when it wrote): Dagster
    moves a run status sensor's cursor past a run whose evaluation raised, so its alert would be lost.
    Oldest first, so history replays in order; at most `limit` new runs. Settling is idempotent, so a
    run the sensors did settle changes nothing and costs a lookup. Returns the new cursor and what was
    recorded.

    The read goes `RECONCILE_OVERLAP` back from the last settled update time, for the runs written late
    and the rest of a tie the limit cut. The runs settled there are skipped, and read beyond `limit`:
    a window holding more than `limit` of them still gets to the new ones. The cursor does not move
    past `now` (the sensor's clock): a run stamped by a worker whose clock is ahead would carry it
    past the runs of correct clocks written after it."""
    records = instance.get_run_records(
        dg.RunsFilter(
            statuses=[dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.SUCCESS], updated_after=cursor.start
        ),
        limit=limit + len(cursor.settled),
        order_by="update_timestamp",
        ascending=True,
    )
    new = [r for r in records if r.dagster_run.run_id not in cursor.settled][:limit]
    recorded = [text for finished in new if (text := settle_missed(conn, instance, finished, repository))]
    latest = max([cursor.after, *(r.update_timestamp for r in new)])
    moved = ReconcileCursor(after=latest if now is None else min(latest, now))
    # The settled runs the next read starts after drop out; those a full read did not reach (past its
    # last row, the limit) stay.
    done = cursor.settled | {r.dagster_run.run_id for r in new}
    read = {r.dagster_run.run_id for r in records}
    full = len(records) == limit + len(cursor.settled)
    kept = {
        r.dagster_run.run_id
        for r in records
        if r.dagster_run.run_id in done and r.update_timestamp > moved.start
    }
    unread = cursor.settled - read if full else frozenset()
    return ReconcileCursor(after=moved.after, settled=frozenset(kept | unread)), recorded


@dg.sensor(
    name="run_alerts_reconcile_sensor",
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Every 5 minutes: settles the finished runs whose run_failure_alert_sensor or "
    "run_success_resolves_alerts evaluation failed (PostgreSQL down), so no failed run goes unalerted.",
)
def run_alerts_reconcile_sensor(
    context: dg.SensorEvaluationContext, postgres: PostgresResource
) -> dg.SensorResult:
    now = datetime.now(UTC)
    cursor = ReconcileCursor.loads(context.cursor, now)
    with postgres.connect() as conn:
        moved, recorded = reconcile(conn, context.instance, cursor, context.repository_def, now=now)
    for text in recorded:
        context.log.error(f"run {text}: its failure had not been recorded; recorded now")
    skip = (
        None
        if recorded
        else dg.SkipReason(
            f"no missed run alerts ({cursor.window(now)}; skipped {len(cursor.settled)} settled before)"
        )
    )
    return dg.SensorResult(cursor=moved.dumps(), skip_reason=skip)


defs = dg.Definitions(
    sensors=[run_failure_alert_sensor, run_success_resolves_alerts, run_alerts_reconcile_sensor]
)
