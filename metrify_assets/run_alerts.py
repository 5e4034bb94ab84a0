"""Runs that failed for good become alerts: a row in `ops.run_alerts` and an error in the daemon log.

A failed run the daemon is about to re-run (`dagster/will_retry`) is not an alert yet; its last
attempt is. Routing alerts to people (mail, chat, paging) builds on this table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import dagster as dg
import psycopg

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


def record(conn: psycopg.Connection, alert: RunAlert) -> None:
    conn.execute(
        "INSERT INTO ops.run_alerts (run_id, job_name, batch_id, step_key, error_type, message) "
        "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (run_id) DO NOTHING",
        (alert.run_id, alert.job_name, alert.batch_id, alert.step_key, alert.error_type, alert.message),
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


defs = dg.Definitions(sensors=[run_failure_alert_sensor])
