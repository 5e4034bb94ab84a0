"""Runs that failed for good become alerts: a row in `ops.run_alerts`, an error in the daemon log, and
a standing `run_failure` condition in `ops.alerts` (delivered to people by `alerts.delivery`).

A failed run the daemon is about to re-run (`dagster/will_retry`) is not an alert yet; its last
attempt is. The condition is the job (or, for an ingest run, the job's batch): a job failing every
hour is one alert, and the next successful run of the same job (or batch) resolves it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import dagster as dg
import psycopg

from metrify_assets.alerts.store import Alert, raise_alert, resolve_condition
from metrify_assets.errors import root_error
from metrify_assets.ingestion.sensors import BATCH_TAG
from metrify_assets.resources import PostgresResource

WILL_RETRY_TAG = "dagster/will_retry"


@dataclass(frozen=True)
class RunAlert:
    run_id: str
    job_name: str
    batch_id: str | None
    step_key: str | None
    error_type: str
    message: str

    @property
    def dedup_key(self) -> str:
        return condition_key(self.job_name, self.batch_id)

    @property
    def text(self) -> str:
        batch = f" (batch {self.batch_id})" if self.batch_id else ""
        return f"run {self.run_id} of {self.job_name}{batch} failed: {self.error_type}: {self.message}"


def run_alert(run: dg.DagsterRun, step_failures: Sequence[dg.DagsterEvent]) -> RunAlert | None:
    """The alert a failed run raises (None while the daemon will still retry it). Pure: unit-tested."""
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
        message=(error.message.strip() if error else "the run failed outside its steps (see the run log)")[
            :2000
        ],
    )


def condition_key(job_name: str, batch_id: str | None) -> str:
    """The dedup key of a job's (or an ingest batch's) failure condition in `ops.alerts`."""
    return f"run_failure:{job_name}" + (f":{batch_id}" if batch_id else "")


def record(conn: psycopg.Connection, alert: RunAlert) -> None:
    """The run's row in `ops.run_alerts` (once per run) and its job's standing condition."""
    inserted = conn.execute(
        "INSERT INTO ops.run_alerts (run_id, job_name, batch_id, step_key, error_type, message) "
        "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (run_id) DO NOTHING",
        (alert.run_id, alert.job_name, alert.batch_id, alert.step_key, alert.error_type, alert.message),
    ).rowcount
    if not inserted:  # the sensor saw this run before (a restarted daemon): already counted
        return
    subject = alert.job_name + (f" (batch {alert.batch_id})" if alert.batch_id else "")
    raise_alert(
        conn,
        Alert(
            kind="run_failure",
            severity="critical",
            subject=subject,
            dedup_key=alert.dedup_key,
            summary=alert.text,
            details={"run_id": alert.run_id, "step_key": alert.step_key, "error_type": alert.error_type},
        ),
    )


@dg.run_failure_sensor(
    name="run_failure_alert_sensor",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Records every run that failed for good in ops.run_alerts and logs it as an error.",
)
def run_failure_alert_sensor(context: dg.RunFailureSensorContext, postgres: PostgresResource) -> None:
    alert = run_alert(context.dagster_run, context.get_step_failure_events())
    if alert is None:
        return
    with postgres.connect() as conn:
        record(conn, alert)
    context.log.error(alert.text)


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    name="run_success_resolves_alerts",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="A successful run resolves the open run_failure alert of its job (or ingest batch).",
)
def run_success_resolves_alerts(context: dg.RunStatusSensorContext, postgres: PostgresResource) -> None:
    run = context.dagster_run
    key = condition_key(run.job_name, run.tags.get(BATCH_TAG))
    with postgres.connect() as conn:
        resolved = resolve_condition(conn, key, f"run {run.run_id} of {run.job_name} succeeded")
    if resolved is not None:
        context.log.info(f"alert {resolved} resolved: {run.job_name} succeeded")


defs = dg.Definitions(sensors=[run_failure_alert_sensor, run_success_resolves_alerts])
