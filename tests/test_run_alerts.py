"""Run-failure alerts: a run that failed for good is recorded once, with its step's error."""

from __future__ import annotations

import dagster as dg
import psycopg
import pytest

from metrify_assets.alerts.store import list_alerts
from metrify_assets.errors import RETRY_POLICY
from metrify_assets.ingestion.sensors import BATCH_TAG
from metrify_assets.resources import PostgresResource
from metrify_assets.run_alerts import WILL_RETRY_TAG, RunAlert, record, run_alert, run_success_resolves_alerts


class OutageError(ConnectionError):
    pass


ATTEMPTS: list[int] = []


@dg.op(retry_policy=dg.RetryPolicy(max_retries=2, delay=0.01))
def flaky() -> None:
    """Down for two attempts, then up: the policy's retries absorb it."""
    ATTEMPTS.append(1)
    if len(ATTEMPTS) < 3:
        raise OutageError("database restarting")


@dg.op(retry_policy=dg.RetryPolicy(max_retries=2, delay=0.01))
def down() -> None:
    raise OutageError("database unreachable")


@pytest.mark.postgres
def test_a_step_outage_is_retried_then_succeeds_or_fails_the_run_with_an_alert(
    pg: psycopg.Connection,
) -> None:
    recovered = (
        dg.GraphDefinition("recovers", node_defs=[flaky]).to_job().execute_in_process(raise_on_error=False)
    )
    assert recovered.success and len(ATTEMPTS) == 3

    job = dg.GraphDefinition("stays_down", node_defs=[down]).to_job()
    instance = dg.DagsterInstance.ephemeral()
    result = job.execute_in_process(instance=instance, raise_on_error=False, tags={BATCH_TAG: "b-7"})
    assert not result.success
    restarts = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_RESTARTED]
    assert len(restarts) == 2
    failures = [e for e in result.all_events if e.is_step_failure]
    run = instance.get_run_by_id(result.run_id)
    assert run is not None
    alert = run_alert(run, failures)
    assert alert is not None
    assert (alert.job_name, alert.batch_id, alert.step_key, alert.error_type) == (
        "stays_down",
        "b-7",
        "down",
        "OutageError",
    )
    assert "database unreachable" in alert.message
    record(pg, alert)
    record(pg, alert)  # the sensor may see a run twice (a restarted daemon): one row
    assert pg.execute("SELECT count(*), max(batch_id) FROM ops.run_alerts").fetchone() == (1, "b-7")
    (standing,) = list_alerts(pg, "open")
    assert (standing.kind, standing.severity, standing.subject, standing.occurrences) == (
        "run_failure",
        "critical",
        "stays_down (batch b-7)",
        1,
    )
    again = result_of_another_failed_run(job, instance)
    record(pg, again)  # the same batch failing again: the same standing alert
    assert [(a.alert_id, a.occurrences) for a in list_alerts(pg, "open")] == [(standing.alert_id, 2)]

    retrying = run.with_tags({**run.tags, WILL_RETRY_TAG: "true"})
    assert run_alert(retrying, failures) is None  # the daemon re-runs it: the last attempt alerts


def result_of_another_failed_run(job: dg.JobDefinition, instance: dg.DagsterInstance) -> RunAlert:
    result = job.execute_in_process(instance=instance, raise_on_error=False, tags={BATCH_TAG: "b-7"})
    run = instance.get_run_by_id(result.run_id)
    assert run is not None
    alert = run_alert(run, [e for e in result.all_events if e.is_step_failure])
    assert alert is not None
    return alert


@pytest.mark.postgres
def test_a_successful_run_of_the_job_resolves_its_failure_alert(
    pg: psycopg.Connection, pg_resource: PostgresResource
) -> None:
    instance = dg.DagsterInstance.ephemeral()
    failed = result_of_another_failed_run(
        dg.GraphDefinition("stays_down", node_defs=[down]).to_job(), instance
    )
    record(pg, failed)
    pg.commit()

    ok = dg.GraphDefinition("stays_down", node_defs=[fine]).to_job()
    result = ok.execute_in_process(instance=instance, tags={BATCH_TAG: "b-7"})
    run = instance.get_run_by_id(result.run_id)
    assert run is not None
    success = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_SUCCESS)
    context = dg.build_run_status_sensor_context(
        sensor_name="run_success_resolves_alerts",
        dagster_instance=instance,
        dagster_run=run,
        dagster_event=success,
        resources={"postgres": pg_resource},
    )
    run_success_resolves_alerts(context)
    (resolved,) = list_alerts(pg, "all")
    assert resolved.status == "resolved" and resolved.resolution.startswith(f"run {run.run_id}")


@dg.op
def fine() -> None:
    """The job's next run works again."""


@pytest.mark.parametrize("job", ["refresh_job", "daily_job", "daily_marts_job", "weekly_job"])
def test_every_scheduled_job_retries_its_steps(job: str) -> None:
    from metrify_assets.definitions import defs

    assert defs().resolve_job_def(job).op_retry_policy == RETRY_POLICY
