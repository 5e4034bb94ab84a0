"""What the platform holds and owes now, for `metrify status`: one read of the stores an operator
would otherwise gather from six commands and the UI.

The figures are the pipeline metrics' own (one scrape of `PipelineCollector`, so the CLI and
Prometheus never disagree), plus what only the orchestration knows: landing files not ingested yet,
days touched since the last `metrify run`, downstream runs owed (their open `run_failure` alerts, and
failed runs whose alert is not recorded yet),
each downstream job's last run, whether a Dagster daemon is heartbeating and which schedules and
sensors a person turned on (they start off: a daemon with none on moves no data). Each read costs what is
current, not the history held (the metrics' queries; the cursor of `metrify run`; a run per job).

`attention` turns a `Status` into the lines a person should act on, each naming the command that
acts; `gather` reads it. Nothing here writes.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg
from dagster._core.definitions.run_request import InstigatorType
from dagster._core.scheduler.instigation import InstigatorStatus
from prometheus_client.core import Metric

from metrify_assets.alerts.store import list_alerts
from metrify_assets.contracts import CONTRACTS
from metrify_assets.grid.area_history import area_changes, area_warnings, newest_judged_day
from metrify_assets.grid.areas import DEFAULT_AREA
from metrify_assets.observability.metrics import PipelineCollector
from metrify_assets.observability.store_metrics import LIVE
from metrify_assets.orchestration.catchup import (
    SEQ_CURSOR,
    first_run_days,
    missing_landing_dir,
    pending_files,
)
from metrify_assets.orchestration.checks import FailedCheck, failed_error_checks
from metrify_assets.orchestration.weekly import DRY_RUN_TAG
from metrify_assets.partitions import ranges_text
from metrify_assets.resources import PostgresResource
from metrify_assets.resources.kafka import KafkaResource
from metrify_assets.run_alerts import day_range, failed_days, made_good, unrecorded
from metrify_assets.storage.days import LakeDays, holds_standing, lake_days

# A daemon heartbeats every 30 s (Dagster's default); three missed beats and it is taken for stopped.
DAEMON_SILENT_AFTER = timedelta(seconds=90)
# The jobs whose last run the status shows: the downstream graph (ingest runs show as each source's
# last batch). Named as in `metrify_assets.schedules`, which is not imported: it loads dbt's project.
JOBS = ("refresh_job", "daily_marts_job", "daily_job", "weekly_job")
RUNS_READ = 20  # a job's newest runs read to find its newest real one past dry runs
CRITICAL_SHOWN = 5  # the newest open critical alerts named; `metrify alerts list` has them all
# What a person calls the store behind each metrics collector that reads one (`metrics.COLLECTORS`).
STORES = {"postgres": "PostgreSQL", "kafka": "Kafka", "dagster": "Dagster's run storage"}


@dataclass(frozen=True)
class SourceStatus:
    """One source: its newest stored record and batch, the last hour's quality score, and what waits
    (landing files, Kafka messages) or was set aside (dead letters a replay could accept, records
    waiting for a reviewer)."""

    source: str
    last_record: datetime | None = None
    last_batch: datetime | None = None
    last_batch_file: str | None = None  # the file `metrify ingest` read it from (None: Kafka, API, ...)
    quality_score: float | None = None
    landing_files: int | None = None  # None: PostgreSQL could not be read (its ledger tells which)
    kafka_lag: int | None = None  # None: Kafka not configured, or unreadable
    dead_letters: int | None = None  # waiting records a replay could accept; None: not read (PostgreSQL)
    review_pending: int | None = None


@dataclass(frozen=True)
class JobStatus:
    """A job's newest run (any status) and newest successful run."""

    job: str
    last_status: str | None = None
    last_run_at: datetime | None = None  # when the newest run started (or was created, if queued)
    last_success_at: datetime | None = None  # when the newest successful run ended
    last_run_id: str | None = None


@dataclass(frozen=True)
class OwedRun:
    """A downstream run that failed and no run has made up for yet; `alert_recorded` False: its
    run_failure alert is not recorded yet (PostgreSQL was away when it ended), but it is owed all the
    same: the next `metrify run`, or the daemon's reconcile sensor, records it and the run is made up."""

    job: str
    first: date
    last: date
    alert_recorded: bool = True

    @property
    def days(self) -> str:
        return ranges_text([(self.first, self.last)])


@dataclass
class Status:
    """Everything `metrify status` prints; `unreadable` names what could not be read and why (its
    figures are missing, not zero)."""

    at: datetime
    sources: list[SourceStatus] = field(default_factory=list)
    # Since the last `metrify run`; before the first, the days it would take (touched, not rebuilt);
    # None: none of those, and it never ran here.
    touched_days: list[date] | None = None
    owed: list[OwedRun] | None = None  # None: PostgreSQL could not be read
    open_alerts: dict[str, int] | None = None  # severity -> open alerts; None: not read
    critical_alerts: list[str] = field(default_factory=list)  # "#id subject: summary", newest first
    grid_nodes: dict[str, int] | None = None  # state -> nodes in it; None: not read
    anomaly_rate: float | None = None
    vee_estimated_share: float | None = None
    jobs: list[JobStatus] = field(default_factory=list)
    failed_checks: list[FailedCheck] | None = None  # of the jobs' newest runs; None: not read
    daemon_heartbeat: datetime | None = None
    # Turned on by a person (the UI, `dagster schedule start`); those on by default are not named.
    # None: Dagster's storage could not be read.
    schedules_on: list[str] | None = None
    sensors_on: list[str] | None = None
    unreadable: dict[str, str] = field(default_factory=dict)
    landing_missing: str | None = None  # the landing directory should exist and does not (why)
    # Per tiered dataset, its days in the lake and those that left PostgreSQL (freshness counts hot
    # rows only); legal holds standing. None: PostgreSQL could not be read.
    lake: dict[str, LakeDays] | None = None
    holds: int | None = None
    late_rows_waiting: dict[str, int] | None = None  # dataset -> late rows kept hot for a restore
    grid_area: str = DEFAULT_AREA  # the area the next run judges the grid nodes by
    grid_area_from: str | None = None  # what chose it (`Settings.grid_area_from`); None: the default
    # Grid nodes of the newest judged days judged under another area (`grid.area_history.area_warnings`).
    grid_area_warnings: list[str] = field(default_factory=list)

    @property
    def daemon_running(self) -> bool:
        beat = self.daemon_heartbeat
        return beat is not None and self.at - beat <= DAEMON_SILENT_AFTER

    @property
    def ingesting_sensors_on(self) -> list[str]:
        """The turned-on sensors that take waiting work: landing, Kafka and late days."""
        return [
            name
            for name in self.sensors_on or []
            if name.startswith(("landing_", "kafka_")) or name == "late_days_sensor"
        ]


def samples(families: Iterable[Metric]) -> dict[str, list[tuple[dict[str, str], float]]]:
    """A scrape's samples by name: each with its labels and value."""
    found: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
    for family in families:
        found.setdefault(family.name, [])  # a family read without samples (no grid nodes yet): empty
        for sample in family.samples:
            found[sample.name].append((dict(sample.labels), float(sample.value)))
    return found


def _by_source(values: list[tuple[dict[str, str], float]]) -> dict[str, float]:
    return {labels["source"]: value for labels, value in values}


def _instant(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def from_scrape(
    status: Status,
    families: Iterable[Metric],
    topics: Mapping[str, str] | None = None,
    landing_files: Mapping[str, int] | None = None,
    batch_files: Mapping[str, str | None] | None = None,
) -> None:
    """Fill `status` from one scrape of the pipeline metrics. `topics`: each source's Kafka topic
    (None: Kafka not configured); `landing_files`: files per source not in the ledger yet;
    `batch_files`: the file each source's newest batch was read from (`last_batch_files`)."""
    found = samples(families)
    present = set(found)  # the families the scrape read (a failed collector's are missing)
    records = _by_source(found["metrify_source_last_record_timestamp_seconds"])
    batches = _by_source(found["metrify_source_last_batch_timestamp_seconds"])
    quality = _by_source(found["metrify_quality_score"])
    dlq = _by_source(found["metrify_dlq_records"])
    pending = _by_source(found["metrify_review_pending"])
    backlog_read = "metrify_dlq_records" in present
    lag: dict[str, float] = defaultdict(float)
    for labels, value in found["metrify_consumer_lag_messages"]:
        lag[labels["topic"]] += value
    lag_read = topics is not None and STORES["kafka"] not in status.unreadable
    for source in CONTRACTS:
        topic = topics.get(source) if topics is not None else None
        status.sources.append(
            SourceStatus(
                source=source,
                last_record=_instant(records.get(source)),
                last_batch=_instant(batches.get(source)),
                last_batch_file=(batch_files or {}).get(source),
                quality_score=quality.get(source),
                landing_files=None if landing_files is None else landing_files.get(source, 0),
                kafka_lag=int(lag.get(topic, 0)) if lag_read and topic is not None else None,
                dead_letters=int(dlq.get(source, 0)) if backlog_read else None,
                review_pending=int(pending.get(source, 0)) if backlog_read else None,
            )
        )
    alerts: dict[str, int] = defaultdict(int)
    for labels, value in found["metrify_open_alerts"]:
        alerts[labels["severity"]] += int(value)
    if "metrify_open_alerts" in present:
        status.open_alerts = {severity: count for severity, count in alerts.items() if count}
    nodes: dict[str, int] = defaultdict(int)
    for labels, value in found["metrify_grid_state"]:
        if value:
            nodes[labels["state"]] += 1
    if "metrify_grid_state" in present:
        status.grid_nodes = dict(nodes)
    if "metrify_lifecycle_late_rows_waiting" in present:
        waiting = found["metrify_lifecycle_late_rows_waiting"]
        status.late_rows_waiting = {labels["dataset"]: int(value) for labels, value in waiting}
    for name, attribute in (
        ("metrify_anomaly_rate", "anomaly_rate"),
        ("metrify_vee_estimated_share", "vee_estimated_share"),
    ):
        if found[name]:
            setattr(status, attribute, found[name][0][1])


def _dry(record: dg.RunRecord) -> bool:
    """A lifecycle dry run: it changed nothing, so it is neither a job's last run nor owed."""
    return record.dagster_run.tags.get(DRY_RUN_TAG) == "true"


def _newest(instance: dg.DagsterInstance, runs: dg.RunsFilter) -> dg.RunRecord | None:
    """The newest run of `runs` that is not a dry run."""
    return next((r for r in instance.get_run_records(runs, limit=RUNS_READ) if not _dry(r)), None)


@dataclass(frozen=True)
class JobRuns:
    """What the status reads of one downstream job's runs: its `JobStatus`, and its newest `RUNS_READ`
    failed runs less the dry ones (for `unrecorded_owed`)."""

    status: JobStatus
    failed: list[dg.RunRecord]


def job_runs(instance: dg.DagsterInstance, job: str) -> JobRuns:
    """`job`'s newest run, newest success and failed runs from one indexed read of its newest
    `RUNS_READ` runs, which serves all three while the job has fewer runs. Past that, the newest
    success and the failed runs older than the read take one more read each, and only when the read
    does not hold them (a success in it is the newest; `RUNS_READ` failures in it are the newest)."""
    failure, success = dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.SUCCESS
    newest = instance.get_run_records(dg.RunsFilter(job_name=job), limit=RUNS_READ)
    whole = len(newest) < RUNS_READ
    failed = [r for r in newest if r.dagster_run.status == failure]
    if not whole and len(failed) < RUNS_READ:
        older = dg.RunsFilter(job_name=job, statuses=[failure])
        cursor = newest[-1].dagster_run.run_id
        failed += instance.get_run_records(older, limit=RUNS_READ - len(failed), cursor=cursor)
    failed = [r for r in failed if not _dry(r)]
    real = [r for r in newest if not _dry(r)]
    if not real:
        return JobRuns(JobStatus(job), failed)
    record = real[0]
    done = next((r for r in real if r.dagster_run.status == success), None)
    if done is None and not whole:
        done = _newest(instance, dg.RunsFilter(job_name=job, statuses=[success]))
    return JobRuns(
        JobStatus(
            job,
            last_status=record.dagster_run.status.value.lower(),
            last_run_at=_instant(record.start_time or record.create_timestamp.timestamp()),
            last_success_at=_instant(done.end_time if done else None),
            last_run_id=record.dagster_run.run_id,
        ),
        failed,
    )


def unrecorded_owed(
    conn: psycopg.Connection, instance: dg.DagsterInstance, failed: list[dg.RunRecord]
) -> list[OwedRun]:
    """The days of the downstream jobs' `failed` runs (`JobRuns.failed`) whose alert is not recorded
    (`run_alerts.unrecorded`, what the reconcile sensor records) and no later run made good
    (`run_alerts.made_good`): owed before the sensor or the next `metrify run` records them."""
    return [
        OwedRun(alert.job_name, *day_range(alert.days), alert_recorded=False)
        for record, alert in unrecorded(conn, instance, failed, None)
        if alert.days is not None
        and alert.batch_id is None
        and made_good(instance, record, alert, None) is None
    ]


def daemon_heartbeat(instance: dg.DagsterInstance) -> datetime | None:
    """The newest heartbeat of any Dagster daemon on the instance (None: none ever)."""
    beats = instance.get_daemon_heartbeats()
    return _instant(max((beat.timestamp for beat in beats.values()), default=None))


def turned_on(instance: dg.DagsterInstance, kind: InstigatorType) -> list[str] | None:
    """The schedules or sensors a person turned on, by name: their stored state is running. One that
    runs by default in code has no such state (and is not named); Dagster starts every other one off.
    None for an instance that keeps no such state (an ephemeral one)."""
    if instance.schedule_storage is None:
        return None
    states = instance.all_instigator_state(
        instigator_type=kind, instigator_statuses={InstigatorStatus.RUNNING}
    )
    return sorted({state.instigator_name for state in states})


def attention(status: Status) -> list[str]:
    """What a person should act on, most urgent first, each with the command that acts on it."""
    lines = [f"{what} could not be read: {why}" for what, why in status.unreadable.items()]
    if status.landing_missing:
        lines.append(status.landing_missing)
    critical = (status.open_alerts or {}).get("critical", 0)
    if critical:
        lines.append(f"{critical} critical alert{'s' if critical != 1 else ''} open (`metrify alerts list`)")
    emergency = (status.grid_nodes or {}).get("emergency", 0)
    if emergency:
        lines.append(f"{emergency} grid node{'s' if emergency != 1 else ''} in emergency state")
    lines += status.grid_area_warnings
    for run in status.owed or []:
        unrecorded = "" if run.alert_recorded else " (its alert is not recorded yet)"
        lines.append(
            f"{run.job} failed for {run.days} and is owed{unrecorded}: the daemon or the next `metrify run` "
            "runs it again"
        )
    for check in status.failed_checks or []:
        lines.append(
            f"check {check} failed (severity ERROR, the latest evaluation): its asset's Checks tab in "
            "`metrify ui` says why"
        )
    if status.daemon_running and status.schedules_on == []:
        lines.append(
            "the Dagster daemon runs, but no schedule is turned on: nothing refreshes by itself (they start "
            "off; the UI's Automation page or `dagster schedule start` turns them on)"
        )
    waiting = []
    files = sum(s.landing_files or 0 for s in status.sources)
    if files:
        waiting.append(f"{files} landing file{'s' if files != 1 else ''}")
    lag = sum(s.kafka_lag or 0 for s in status.sources)
    if lag:
        waiting.append(f"{lag:,} Kafka message{'s' if lag != 1 else ''}")
    if status.touched_days:
        waiting.append(
            f"{len(status.touched_days)} day{'s' if len(status.touched_days) != 1 else ''} touched"
        )
    sensors = status.ingesting_sensors_on
    if waiting:
        who = "`metrify run` takes it"
        if status.daemon_running and sensors:
            who += f", or the daemon's {', '.join(sensors)}"
        elif status.daemon_running and status.sensors_on is not None:
            who += (
                ": the daemon's landing, Kafka and late-days sensors are off (they start off; the UI's "
                "Automation page or `dagster sensor start` turns them on)"
            )
        lines.append(f"waiting: {', '.join(waiting)} ({who})")
    letters = sum(s.dead_letters or 0 for s in status.sources)
    if letters:
        lines.append(
            f"{letters:,} dead-letter {'record' if letters == 1 else 'records'} a replay could accept "
            f"{'waits' if letters == 1 else 'wait'} for a fix, then a replay (`metrify dlq list`; "
            "`metrify dlq discard` closes those no fix will let in). Not counted: those no replay can "
            "fix, as a timestamp without an offset (ingest the file again with --timezone, then "
            "`metrify dlq discard --reason malformed:timestamp_without_offset`)"
        )
    review = sum(s.review_pending or 0 for s in status.sources)
    if review:
        lines.append(
            f"{review:,} flagged {'record waits' if review == 1 else 'records wait'} for a reviewer "
            "(`metrify review list`)"
        )
    return lines


def as_json(status: Status) -> dict[str, Any]:
    """`status` as plain values (times as `datetime`: the CLI's `to_json` writes them in ISO 8601)."""
    return {
        "at": status.at,
        "sources": [vars(s) for s in status.sources],
        "touched_days": status.touched_days,
        "owed": None if status.owed is None else [vars(run) for run in status.owed],
        "open_alerts": status.open_alerts,
        "critical_alerts": status.critical_alerts,
        "grid_nodes": status.grid_nodes,
        "grid_area": {
            "area": status.grid_area,
            "from": status.grid_area_from,
            "warnings": status.grid_area_warnings,
        },
        "anomaly_rate": status.anomaly_rate,
        "vee_estimated_share": status.vee_estimated_share,
        "jobs": [vars(job) for job in status.jobs],
        "failed_checks": None if status.failed_checks is None else [vars(c) for c in status.failed_checks],
        "daemon": {"running": status.daemon_running, "last_heartbeat": status.daemon_heartbeat},
        "schedules_on": status.schedules_on,
        "sensors_on": status.sensors_on,
        "unreadable": status.unreadable,
        "lifecycle": None
        if status.lake is None
        else {
            "datasets": [vars(days) for days in status.lake.values()],
            "holds_standing": status.holds,
            "late_rows_waiting": status.late_rows_waiting,
        },
        "attention": attention(status),
    }


def last_batch_files(conn: psycopg.Connection) -> dict[str, str | None]:
    """The file each source's newest live batch (the one `last batch` times) was read from, as given to
    `metrify ingest`; None for a Kafka range, an API request or a simulated file. One index probe per
    source (`ingest_ledger_source_processed_at`)."""
    files: dict[str, str | None] = {}
    for source in CONTRACTS:
        row = conn.execute(
            f"SELECT source_file FROM ops.ingest_ledger WHERE source = %s AND {LIVE} "
            "ORDER BY processed_at DESC LIMIT 1",
            (source,),
        ).fetchone()
        files[source] = None if row is None else row[0]
    return files


def stored_area_warnings(conn: psycopg.Connection, status: Status) -> list[str]:
    """`grid.area_history.area_warnings` for the newest judged day and the month before it, against the area
    the next run applies: the next run's new days would be judged by other standards than theirs."""
    newest = newest_judged_day(conn)
    if newest is None:
        return []
    changes = area_changes(conn, newest, newest, lambda node: status.grid_area)
    return area_warnings(changes, status.grid_area_from)


def touched_since(conn: psycopg.Connection, after_seq: int) -> list[date]:
    """The days stamped in `ops.touched_days` after `after_seq` (what the next `metrify run` builds:
    not the arrival day of a batch that stored nothing)."""
    rows = conn.execute(
        "SELECT DISTINCT day FROM ops.touched_days WHERE seq > %s AND stored ORDER BY day", (after_seq,)
    ).fetchall()
    return [row[0] for row in rows]


def gather(
    postgres: PostgresResource,
    kafka: KafkaResource | None,
    landing_dir: Path,
    instance: dg.DagsterInstance,
    describe: Callable[[BaseException], str],
    landing_named: bool = False,
    grid_area: str | None = None,
    grid_area_from: str | None = None,
) -> Status:
    """Read the status: one scrape of the pipeline metrics (without the counters, which it does not
    show), then what the orchestration knows, from PostgreSQL and `instance`. `kafka`: None when Kafka
    is not configured. A store that cannot be read is named in `unreadable`, with its error as
    `describe` words it. `landing_named`: METRIFY_LANDING_DIR chose `landing_dir`
    (`Settings.landing_dir_named`), for the warning when it does not exist (`catchup.missing_landing_dir`).
    `grid_area`, `grid_area_from`: the deployment's area and what chose it (`Settings`), compared with
    the areas the newest judged days were judged under."""
    status = Status(at=datetime.now(UTC), grid_area=grid_area or DEFAULT_AREA, grid_area_from=grid_area_from)

    connect = partial(postgres.connect, autocommit=True)
    collector = PipelineCollector(connect, kafka=kafka, skip=("ledger",))
    families = list(collector.collect())
    for name, err in collector.failing.items():
        status.unreadable[STORES.get(name, f"metrics collector {name}")] = describe(err)
    landing: dict[str, int] | None = None
    batch_files: dict[str, str | None] | None = None
    if STORES["postgres"] not in status.unreadable:
        try:
            with connect() as conn:
                landing = Counter(f.source for f in pending_files(conn, landing_dir))
                batch_files = last_batch_files(conn)
                status.landing_missing = missing_landing_dir(
                    conn, landing_dir, landing_named, kafka is not None
                )
                status.owed = [OwedRun(job, *day_range(days)) for job, days in failed_days(conn, JOBS)]
                status.critical_alerts = [
                    f"#{row.alert_id} {row.subject}: {row.summary}"
                    for row in list_alerts(conn, "open", severity="critical", limit=CRITICAL_SHOWN)
                ]
                status.lake, status.holds = lake_days(conn), holds_standing(conn)
                status.grid_area_warnings = stored_area_warnings(conn, status)
                seen = instance.run_storage.get_cursor_values({SEQ_CURSOR}).get(SEQ_CURSOR)
                if seen:
                    status.touched_days = touched_since(conn, int(seen))
        except psycopg.Error as err:
            status.unreadable[STORES["postgres"]] = describe(err)
    topics = {source: kafka.topic(source) for source in CONTRACTS} if kafka is not None else None
    from_scrape(status, families, topics, landing, batch_files)
    try:
        runs = [job_runs(instance, job) for job in JOBS]
        status.jobs = [job.status for job in runs]
        status.failed_checks = failed_error_checks(
            instance, (j.last_run_id for j in status.jobs if j.last_run_id)
        )
        status.daemon_heartbeat = daemon_heartbeat(instance)
        status.schedules_on = turned_on(instance, InstigatorType.SCHEDULE)
        status.sensors_on = turned_on(instance, InstigatorType.SENSOR)
        if status.owed is not None:
            with connect() as conn:
                missed = unrecorded_owed(conn, instance, [r for job in runs for r in job.failed])
            status.owed = sorted([*status.owed, *missed], key=lambda run: (run.first, run.last, run.job))
    except Exception as err:  # noqa: BLE001 - any failure of the run storage leaves out its figures only
        status.unreadable[STORES["dagster"]] = describe(err)
    refresh = next((job for job in status.jobs if job.job == "refresh_job"), None)
    if status.touched_days is None and status.owed is not None and refresh and refresh.last_run_at is None:
        # Neither `metrify run` nor a refresh ever ran here: the days the first run would take (read
        # whole once a deployment has history; one that refreshes by its daemon never asks).
        with connect() as conn:
            status.touched_days = sorted(first_run_days(conn)) or None
    return status
