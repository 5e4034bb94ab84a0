"""Run-failure alerts: a run that failed for good is recorded once, with its step's error."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from metrify_assets.alerts.store import list_alerts
from metrify_assets.ingestion.sensors import BATCH_TAG
from metrify_assets.orchestration.instance import RunFailedError, execute_job, with_resolved_url
from metrify_assets.partitions import TRIGGER_TAG, partition_range_tags
from metrify_assets.resources import PostgresResource
from metrify_assets.run_alerts import (
    PARTITION_TAG,
    RECONCILE_OVERLAP,
    WILL_RETRY_TAG,
    ReconcileCursor,
    RunAlert,
    covers,
    job_assets,
    reconcile,
    record,
    resolve_covered,
    run_alert,
    run_alerts_reconcile_sensor,
    run_assets,
    run_failure_alert_sensor,
    run_success_resolves_alerts,
    selects,
    settle,
)
from tests.orchestration.jobs import cli_defs, success_context, works


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
    assert alert.message == "database unreachable"  # not the type again ("tests....OutageError: ...")
    assert (
        alert.text == f"run {run.run_id} of stays_down (batch b-7) failed: OutageError: database unreachable"
    )
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
    assert standing.summary == alert.text  # what `metrify alerts list` and the webhook body show
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

    context = success_context(
        instance, "stays_down", {BATCH_TAG: "b-7"}, "run_success_resolves_alerts", {"postgres": pg_resource}
    )
    run = context.dagster_run
    run_success_resolves_alerts(context)
    (resolved,) = list_alerts(pg, "all")
    assert resolved.status == "resolved" and resolved.resolution.startswith(f"run {run.run_id}")


def succeed(
    instance: dg.DagsterInstance, pg_resource: PostgresResource, name: str, tags: dict[str, str]
) -> str:
    """A successful run of job `name` with `tags`, seen by `run_success_resolves_alerts`; its run id."""
    context = success_context(instance, name, tags, "run_success_resolves_alerts", {"postgres": pg_resource})
    run_success_resolves_alerts(context)
    return context.dagster_run.run_id


def fail(instance: dg.DagsterInstance, pg: psycopg.Connection, name: str, tags: dict[str, str]) -> RunAlert:
    """A run of job `name` with `tags` that failed for good, recorded as the failure sensor does."""
    job = dg.GraphDefinition(name, node_defs=[down]).to_job()
    result = job.execute_in_process(instance=instance, raise_on_error=False, tags=tags)
    run = instance.get_run_by_id(result.run_id)
    assert run is not None
    alert = run_alert(run, [e for e in result.all_events if e.is_step_failure])
    assert alert is not None
    record(pg, alert)
    pg.commit()
    return alert


def days(first: str, last: str) -> dict[str, str]:
    return partition_range_tags(date.fromisoformat(first), date.fromisoformat(last))


@pytest.mark.postgres
def test_a_failure_for_old_days_stands_until_a_successful_run_covers_those_days(
    pg: psycopg.Connection, pg_resource: PostgresResource
) -> None:
    instance = dg.DagsterInstance.ephemeral()
    # late_days_sensor's run of refresh_job for an old day fails for good ...
    late = fail(instance, pg, "refresh_job", {**days("2026-10-03", "2026-10-03"), TRIGGER_TAG: "late_days"})
    assert late.dedup_key == "run_failure:refresh_job@2026-10-03"
    # ... and the hourly runs for yesterday and today fail too, for a while: a condition of its own.
    hourly = fail(instance, pg, "refresh_job", days("2026-11-29", "2026-11-30"))
    fail(instance, pg, "refresh_job", days("2026-11-29", "2026-11-30"))
    standing = {a.dedup_key: a for a in list_alerts(pg, "open")}
    assert set(standing) == {late.dedup_key, hourly.dedup_key}
    old = standing[late.dedup_key]
    assert (old.subject, old.occurrences) == ("refresh_job [2026-10-03]", 1)
    assert (old.details["first_partition"], old.details["last_partition"]) == ("2026-10-03", "2026-10-03")
    assert old.details["job_name"] == "refresh_job" and standing[hourly.dedup_key].occurrences == 2

    # The next hourly run succeeds: it rebuilt yesterday and today, not the old day.
    succeed(instance, pg_resource, "refresh_job", days("2026-11-29", "2026-11-30"))
    assert [a.dedup_key for a in list_alerts(pg, "open")] == [late.dedup_key]
    # Another job's success over the old day, or a run of refresh_job for part of a range, is no cover.
    succeed(instance, pg_resource, "daily_job", {PARTITION_TAG: "2026-10-03"})
    succeed(instance, pg_resource, "refresh_job", days("2026-10-04", "2026-10-05"))
    assert [a.dedup_key for a in list_alerts(pg, "open")] == [late.dedup_key]
    # A run of refresh_job whose days include the old one rebuilt it: resolved.
    rebuilt = succeed(instance, pg_resource, "refresh_job", days("2026-10-01", "2026-10-05"))
    assert list_alerts(pg, "open") == []
    resolved = next(a for a in list_alerts(pg, "all") if a.dedup_key == late.dedup_key)
    assert resolved.resolution == f"run {rebuilt} of refresh_job succeeded for 2026-10-01..2026-10-05"


def test_which_successful_run_covers_which_failure() -> None:
    assert covers(("2026-10-01", "2026-10-05"), ("2026-10-03", "2026-10-03"))
    assert covers(("2026-10-03", "2026-10-03"), ("2026-10-03", "2026-10-03"))
    assert not covers(("2026-10-04", "2026-10-05"), ("2026-10-03", "2026-10-04"))  # a part only
    assert not covers(None, ("2026-10-03", "2026-10-03"))  # a run without partitions rebuilt no day
    assert covers(("2026-10-04", "2026-10-05"), None) and covers(None, None)  # an unpartitioned failure


@dg.op
def fine() -> None:
    """The job's next run works again."""


@pytest.mark.postgres
def test_a_run_the_cli_executes_alerts_once_and_its_success_resolves_the_alert(
    pg: psycopg.Connection, pg_resource: PostgresResource, tmp_path: Path
) -> None:
    """`metrify run` and the demo execute their jobs in process (`execute_job`): no daemon need see them."""
    switch = tmp_path / "broken"
    switch.touch()
    defs, instance = cli_defs(pg_resource, switch), dg.DagsterInstance.ephemeral()
    nov = days("2026-11-29", "2026-11-30")
    with pytest.raises(RunFailedError, match="divide by zero"):
        execute_job(defs, "refresh_job", instance, tags=nov)
    (alert,) = list_alerts(pg, "open")
    assert (alert.kind, alert.subject, alert.occurrences) == (
        "run_failure",
        "refresh_job [2026-11-29..2026-11-30]",
        1,
    )
    assert (alert.details["step_key"], alert.details["error_type"]) == ("day_figures", "ValueError")
    run_id = str(alert.details["run_id"])
    assert pg.execute("SELECT run_id FROM ops.run_alerts").fetchall() == [(run_id,)]

    # A daemon beside the CLI sees the same failed run: the sensor records nothing more.
    run = instance.get_run_by_id(run_id)
    assert run is not None
    (failed,) = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    assert failed.dagster_event is not None
    run_failure_alert_sensor(
        dg.build_run_status_sensor_context(
            sensor_name="run_failure_alert_sensor",
            dagster_instance=instance,
            dagster_run=run,
            dagster_event=failed.dagster_event,
            resources={"postgres": pg_resource},
        ).for_run_failure()
    )
    assert pg.execute("SELECT count(*) FROM ops.run_alerts").fetchone() == (1,)
    assert [a.occurrences for a in list_alerts(pg, "open")] == [1]

    switch.unlink()  # the fix is deployed: the next run of those days resolves the alert
    fixed = execute_job(defs, "refresh_job", instance, tags=nov)
    assert list_alerts(pg, "open") == []
    (resolved,) = list_alerts(pg, "all")
    assert resolved.resolution == f"run {fixed.run_id} of refresh_job succeeded for 2026-11-29..2026-11-30"


@pytest.mark.postgres
def test_a_canceled_run_is_no_failure_as_for_the_daemons_sensor(pg: psycopg.Connection) -> None:
    """`run_failure_alert_sensor` fires on FAILURE only, `run_success_resolves_alerts` on SUCCESS: a run
    a person canceled raises nothing and resolves nothing."""
    instance = dg.DagsterInstance.ephemeral()
    failed = fail(instance, pg, "refresh_job", days("2026-11-29", "2026-11-30"))
    job = dg.GraphDefinition("refresh_job", node_defs=[fine]).to_job()
    run = instance.create_run_for_job(job, tags=days("2026-11-29", "2026-11-30"))
    instance.report_run_canceled(run)
    canceled = instance.get_run_by_id(run.run_id)
    assert canceled is not None and canceled.status == dg.DagsterRunStatus.CANCELED
    assert settle(pg, canceled, []) is None
    assert pg.execute("SELECT run_id FROM ops.run_alerts").fetchall() == [(failed.run_id,)]
    assert [(a.dedup_key, a.occurrences) for a in list_alerts(pg, "open")] == [(failed.dedup_key, 1)]


def test_an_alert_that_cannot_be_recorded_neither_fails_a_run_nor_hides_its_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A PostgreSQL URL psycopg refuses (a ProgrammingError, not an outage): the successful run is
    returned, the failed run raises its own error, and each says what could not be recorded."""
    misconfigured = PostgresResource(url="postgresql://localhost/metrify?no_such_option=1")
    switch = tmp_path / "broken"
    defs, instance = cli_defs(misconfigured, switch), dg.DagsterInstance.ephemeral()
    nov = days("2026-11-29", "2026-11-30")
    with caplog.at_level(logging.WARNING, logger="metrify_assets.orchestration.instance"):
        worked = execute_job(defs, "refresh_job", instance, tags=nov)
    assert worked.success
    assert f"run {worked.run_id}: its alert could not be recorded: ProgrammingError" in caplog.text

    switch.touch()
    with pytest.raises(RunFailedError, match="divide by zero") as failed:
        execute_job(defs, "refresh_job", instance, tags=nov)
    assert "its alert could not be recorded: ProgrammingError: " in str(failed.value)
    assert "no_such_option" in str(failed.value)


@pytest.mark.postgres
def test_a_success_of_one_part_of_a_job_leaves_the_failure_of_another_part_open(
    pg: psycopg.Connection, pg_resource: PostgresResource, tmp_path: Path
) -> None:
    """`metrify run`'s model training (`weekly_job` limited to the training) fails; `metrify lifecycle
    run` (the same job limited to the lifecycle) succeeding trained no model."""
    switch = tmp_path / "broken"
    switch.touch()
    defs, instance = cli_defs(pg_resource, switch), dg.DagsterInstance.ephemeral()
    with pytest.raises(RunFailedError, match="no readings"):
        execute_job(defs, "weekly_job", instance, asset_selection=["weekly_model"])
    (alert,) = list_alerts(pg, "open")
    assert alert.details["assets"] == ["weekly_model"]

    execute_job(defs, "weekly_job", instance, asset_selection=["weekly_cleanup"])
    assert [a.alert_id for a in list_alerts(pg, "open")] == [alert.alert_id]

    switch.unlink()
    trained = execute_job(defs, "weekly_job", instance)  # the whole job selects the model too
    assert list_alerts(pg, "open") == []
    (resolved,) = list_alerts(pg, "all")
    assert resolved.resolution == f"run {trained.run_id} of weekly_job succeeded"


@pytest.mark.postgres
def test_failures_of_two_parts_of_a_job_are_two_alerts_each_resolved_by_its_part(
    pg: psycopg.Connection,
) -> None:
    """Training fails, then the lifecycle part: two conditions, not one whose assets the second replaced
    (so the lifecycle's success would have resolved the failed training too)."""
    for run_id, asset in (("w-1", "weekly_model"), ("w-2", "weekly_cleanup")):
        record(pg, RunAlert(run_id, "weekly_job", None, asset, "ValueError", "boom", assets=(asset,)))
    pg.commit()
    keys = {a.dedup_key: a.subject for a in list_alerts(pg, "open")}
    assert keys == {
        "run_failure:weekly_job[weekly_model]": "weekly_job for weekly_model",
        "run_failure:weekly_job[weekly_cleanup]": "weekly_job for weekly_cleanup",
    }
    cleaned = dg.DagsterRun(
        job_name="weekly_job", run_id="w-3", asset_selection=frozenset({dg.AssetKey("weekly_cleanup")})
    )
    assert len(resolve_covered(pg, cleaned)) == 1
    pg.commit()
    assert [a.dedup_key for a in list_alerts(pg, "open")] == ["run_failure:weekly_job[weekly_model]"]


@pytest.mark.postgres
def test_a_run_that_selects_every_asset_of_its_job_is_a_run_of_the_whole_job(
    pg: psycopg.Connection, pg_resource: PostgresResource, tmp_path: Path
) -> None:
    """The UI's "Materialize all" on a job's page names every asset: its failure is the whole job's
    condition, and its success resolves a whole-job failure, in the CLI's runs and the sensors'."""
    switch = tmp_path / "broken"
    switch.touch()
    defs, instance = cli_defs(pg_resource, switch), dg.DagsterInstance.ephemeral()
    every = ["weekly_cleanup", "weekly_model"]
    with pytest.raises(RunFailedError, match="no readings"):
        execute_job(defs, "weekly_job", instance, asset_selection=every)
    (alert,) = list_alerts(pg, "open")
    assert (alert.dedup_key, alert.details["assets"]) == ("run_failure:weekly_job", None)

    switch.unlink()
    worked = execute_job(defs, "weekly_job", instance, asset_selection=every)
    assert list_alerts(pg, "open") == []

    # The daemon's sensor: the same failure again, resolved by the same kind of run it sees succeed.
    record(pg, RunAlert("w-9", "weekly_job", None, "weekly_model", "ValueError", "boom"))
    pg.commit()
    run = instance.get_run_by_id(worked.run_id)
    assert run is not None and run.asset_selection == {dg.AssetKey(a) for a in every}
    (success,) = instance.all_logs(worked.run_id, of_type=dg.DagsterEventType.RUN_SUCCESS)
    assert success.dagster_event is not None
    context = dg.build_run_status_sensor_context(
        sensor_name="run_success_resolves_alerts",
        dagster_instance=instance,
        dagster_run=run,
        dagster_event=success.dagster_event,
        resources={"postgres": pg_resource},
        repository_def=defs.get_repository_def(),
    )
    run_success_resolves_alerts(context)
    assert list_alerts(pg, "open") == []
    assert run_assets(run, job_assets(None, "weekly_job")) == tuple(every)  # no job known: as selected
    assert run_assets(run, frozenset({dg.AssetKey("weekly_model")})) is None  # a job's every asset, or more


def test_which_selection_covers_which() -> None:
    assert selects(None, ("a",)) and selects(None, None)  # the whole job selected everything
    assert selects(("a", "b"), ("a",)) and not selects(("b",), ("a",))
    assert not selects(("a", "b"), None)  # part of a job does not make up for the whole of it


def test_the_alert_store_reads_the_code_locations_url_as_a_run_does(monkeypatch: pytest.MonkeyPatch) -> None:
    """The definitions pass the URL as a `dg.EnvVar`; unset, it is refused (not the embedded server)."""
    located = PostgresResource(url=dg.EnvVar("METRIFY_TEST_ALERT_URL"))
    monkeypatch.delenv("METRIFY_TEST_ALERT_URL", raising=False)
    with pytest.raises(ValueError, match="METRIFY_TEST_ALERT_URL is not set"):
        with_resolved_url(located)
    monkeypatch.setenv("METRIFY_TEST_ALERT_URL", "postgresql://db.example/metrify")
    assert with_resolved_url(located).get_url() == "postgresql://db.example/metrify"
    plain = PostgresResource(url="postgresql://other/metrify", data_dir="/srv/pg")
    assert with_resolved_url(plain).model_dump() == plain.model_dump()


def failed_unrecorded(instance: dg.DagsterInstance, name: str, tags: dict[str, str]) -> str:
    """A run of job `name` that failed for good while its sensor could not write (PostgreSQL down)."""
    result = (
        dg.GraphDefinition(name, node_defs=[down])
        .to_job()
        .execute_in_process(instance=instance, raise_on_error=False, tags=tags)
    )
    return result.run_id


def succeeded_unseen(instance: dg.DagsterInstance, name: str, tags: dict[str, str]) -> str:
    return (
        dg.GraphDefinition(name, node_defs=[works])
        .to_job()
        .execute_in_process(instance=instance, tags=tags)
        .run_id
    )


LONG_AGO = ReconcileCursor(after=datetime(2026, 1, 1, tzinfo=UTC))  # before every run of a test


def failure_written_at(instance: dg.DagsterInstance, run_id: str, at: datetime) -> None:
    """Write a failed run's status again as of `at`: the run storage keeps the time the event happened,
    so a process whose clock is behind (or whose write is slow) lands a run that sorts before others."""
    (failed,) = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    assert failed.dagster_event is not None
    instance.run_storage.handle_run_event(run_id, failed.dagster_event, update_timestamp=at)


@pytest.mark.postgres
def test_reconcile_records_a_failure_its_sensor_missed_once(pg: psycopg.Connection) -> None:
    instance = dg.DagsterInstance.ephemeral()
    run_id = failed_unrecorded(instance, "stays_down", days("2026-11-02", "2026-11-02"))
    cursor, recorded = reconcile(pg, instance, LONG_AGO, None)
    assert recorded == [run_id] and cursor.after > LONG_AGO.after
    (standing,) = list_alerts(pg, "open")
    assert (standing.kind, standing.subject, standing.details["run_id"]) == (
        "run_failure", "stays_down [2026-11-02]", run_id
    )  # fmt: skip
    assert reconcile(pg, instance, LONG_AGO, None)[1] == []  # idempotent: a second pass adds nothing
    assert reconcile(pg, instance, cursor, None)[1] == []
    assert pg.execute("SELECT count(*) FROM ops.run_alerts").fetchone() == (1,)
    assert [a.occurrences for a in list_alerts(pg, "open")] == [1]


@pytest.mark.postgres
def test_reconcile_replays_in_order_a_missed_failure_made_good_and_a_newer_failure_stands(
    pg: psycopg.Connection,
) -> None:
    """Failure (missed), success covering it (missed too), a newer failure (recorded): the first is
    logged without an alert, and the success does not resolve the newer failure's alert."""
    instance = dg.DagsterInstance.ephemeral()
    tags = days("2026-11-02", "2026-11-03")
    missed = failed_unrecorded(instance, "stays_down", tags)
    good = succeeded_unseen(instance, "stays_down", days("2026-11-01", "2026-11-03"))
    pg.commit()
    newer = fail(instance, pg, "stays_down", tags)
    _, recorded = reconcile(pg, instance, LONG_AGO, None)
    assert recorded == [f"{missed} (made good by {good})"]
    (standing,) = list_alerts(pg, "open")
    assert (standing.details["run_id"], standing.occurrences) == (newer.run_id, 1)
    rows = pg.execute("SELECT run_id FROM ops.run_alerts").fetchall()
    assert sorted(r[0] for r in rows) == sorted([missed, newer.run_id])


@pytest.mark.postgres
def test_a_success_that_ended_before_a_missed_failure_does_not_make_it_good_when_its_tags_change(
    pg: psycopg.Connection,
) -> None:
    """Editing a run's tags in the UI moves its update time, not when it ended."""
    instance = dg.DagsterInstance.ephemeral()
    tags = days("2026-11-02", "2026-11-02")
    earlier = succeeded_unseen(instance, "stays_down", tags)
    missed = failed_unrecorded(instance, "stays_down", tags)
    instance.add_run_tags(earlier, {"note": "checked"})
    _, recorded = reconcile(pg, instance, LONG_AGO, None)
    assert recorded == [missed]
    assert [a.details["run_id"] for a in list_alerts(pg, "open")] == [missed]


@pytest.mark.postgres
def test_reconcile_reads_again_before_its_cursor_the_failures_whose_status_was_written_late(
    pg: psycopg.Connection,
) -> None:
    """A worker's clock behind, or a slow write: a run's failure lands after a later run's, with an
    earlier update time. The next ticks read the overlap again and settle it; the runs settled there
    are skipped, and drop out of the cursor once a later run moves it past them."""
    instance = dg.DagsterInstance.ephemeral()
    first = failed_unrecorded(instance, "stays_down", {BATCH_TAG: "b-1"})
    cursor, recorded = reconcile(pg, instance, LONG_AGO, None)
    assert recorded == [first] and cursor.settled == {first}

    late = [failed_unrecorded(instance, "stays_down", {BATCH_TAG: b}) for b in ("b-2", "b-3")]
    for minutes, run_id in zip((2, 1), late, strict=True):
        failure_written_at(instance, run_id, cursor.after - timedelta(minutes=minutes))
    # One a tick: the first late run; `first` (updated after both, past the full read) stays settled.
    second, recorded = reconcile(pg, instance, cursor, None, limit=1)
    assert recorded == [late[0]]
    assert second == ReconcileCursor(after=cursor.after, settled=frozenset({first, late[0]}))
    third, recorded = reconcile(pg, instance, second, None, limit=1)
    assert recorded == [late[1]] and third.settled == {first, *late}
    assert reconcile(pg, instance, third, None) == (third, [])  # all settled: nothing, and no move
    standing = {
        str(a.details["batch_id"]): (a.details["run_id"], a.occurrences) for a in list_alerts(pg, "open")
    }
    assert standing == {"b-1": (first, 1), "b-2": (late[0], 1), "b-3": (late[1], 1)}

    later = failed_unrecorded(instance, "stays_down", {BATCH_TAG: "b-4"})
    failure_written_at(instance, later, cursor.after + RECONCILE_OVERLAP + timedelta(seconds=1))
    fourth, recorded = reconcile(pg, instance, third, None)
    assert recorded == [later] and fourth.settled == {later}


@pytest.mark.postgres
def test_a_worker_clock_ahead_does_not_carry_the_cursor_past_later_runs(pg: psycopg.Connection) -> None:
    """A failure stamped an hour ahead is settled, but the cursor stays at the sensor's clock, so a
    failure of a correct clock written afterwards is still read (an hour's cursor would skip it)."""
    instance = dg.DagsterInstance.ephemeral()
    ahead = failed_unrecorded(instance, "stays_down", {BATCH_TAG: "b-ahead"})
    now = datetime.now(UTC)
    failure_written_at(instance, ahead, now + timedelta(hours=1))
    cursor, recorded = reconcile(pg, instance, LONG_AGO, None, now=now)
    assert recorded == [ahead] and cursor == ReconcileCursor(after=now, settled=frozenset({ahead}))
    later = failed_unrecorded(instance, "stays_down", {BATCH_TAG: "b-later"})
    cursor, recorded = reconcile(pg, instance, cursor, None, now=datetime.now(UTC))
    assert recorded == [later] and cursor.settled == {ahead, later}
    assert reconcile(pg, instance, cursor, None, now=cursor.after)[1] == []


@pytest.mark.postgres
def test_reconcile_settles_every_run_of_a_tie_its_limit_cuts(pg: psycopg.Connection) -> None:
    """Three runs updated in the same instant, two a tick: the third is not after the cursor's time,
    only equal to it, and is settled by the next tick."""
    instance = dg.DagsterInstance.ephemeral()
    runs = [failed_unrecorded(instance, "stays_down", {BATCH_TAG: f"b-{i}"}) for i in range(3)]
    tie = datetime(2026, 12, 5, 12, tzinfo=UTC)
    for run_id in runs:
        failure_written_at(instance, run_id, tie)
    cursor, first = reconcile(pg, instance, LONG_AGO, None, limit=2)
    assert len(first) == 2 and cursor == ReconcileCursor(after=tie, settled=frozenset(first))
    cursor, second = reconcile(pg, instance, cursor, None, limit=2)
    assert sorted(first + second) == sorted(runs)
    assert cursor == ReconcileCursor(after=tie, settled=frozenset(runs))
    assert reconcile(pg, instance, cursor, None, limit=2) == (cursor, [])
    assert pg.execute("SELECT count(*) FROM ops.run_alerts").fetchone() == (3,)


@pytest.mark.postgres
def test_reconcile_gets_on_when_its_overlap_holds_more_settled_runs_than_its_limit(
    pg: psycopg.Connection,
) -> None:
    """Five runs a second apart, two a tick: the settled ones the overlap reads again are asked for
    beyond the limit, so each tick settles two new ones (a read of `limit` rows would return the two
    settled first ones again, for ever)."""
    instance = dg.DagsterInstance.ephemeral()
    runs = [failed_unrecorded(instance, "stays_down", {BATCH_TAG: f"b-{i}"}) for i in range(5)]
    base = datetime(2026, 12, 5, 12, tzinfo=UTC)
    for i, run_id in enumerate(runs):
        failure_written_at(instance, run_id, base + timedelta(seconds=i))
    cursor, ticks = LONG_AGO, []
    for _ in range(3):
        cursor, recorded = reconcile(pg, instance, cursor, None, limit=2)
        ticks.append(recorded)
    assert ticks == [runs[:2], runs[2:4], runs[4:]]
    assert cursor == ReconcileCursor(after=base + timedelta(seconds=4), settled=frozenset(runs))
    assert reconcile(pg, instance, cursor, None, limit=2) == (cursor, [])


def reconcile_tick(
    instance: dg.DagsterInstance, pg_resource: PostgresResource, cursor: str | None
) -> dg.SensorResult:
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"postgres": pg_resource})
    result = run_alerts_reconcile_sensor(context)
    assert isinstance(result, dg.SensorResult)
    return result


@pytest.mark.postgres
def test_the_reconcile_sensor_moves_its_cursor_and_says_when_nothing_was_missed(
    pg: psycopg.Connection, pg_resource: PostgresResource
) -> None:
    instance = dg.DagsterInstance.ephemeral()
    run_id = failed_unrecorded(instance, "stays_down", {BATCH_TAG: "b-9"})
    first = reconcile_tick(instance, pg_resource, None)  # the first tick looks back a day
    assert first.skip_reason is None and first.cursor
    assert [a.details["run_id"] for a in list_alerts(pg, "open")] == [run_id]
    assert json.loads(first.cursor)["settled"] == [run_id]
    quiet = reconcile_tick(instance, pg_resource, first.cursor)
    assert quiet.skip_reason is not None
    message = quiet.skip_reason.skip_message or ""
    assert "no missed run alerts" in message and "skipped 1 settled before)" in message
    assert re.search(r"before the cursor's \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC;", message), message
    assert quiet.cursor == first.cursor


@pytest.mark.postgres
def test_the_reconcile_sensor_goes_on_from_the_plain_time_cursor_of_before_the_overlap(
    pg: psycopg.Connection, pg_resource: PostgresResource
) -> None:
    """The cursor was the last settled run's update time: a run updated a minute before it (written
    late) is read again, and the cursor becomes the JSON form."""
    instance = dg.DagsterInstance.ephemeral()
    run_id = failed_unrecorded(instance, "stays_down", {BATCH_TAG: "b-9"})
    written = datetime.now(UTC) - timedelta(minutes=2)
    failure_written_at(instance, run_id, written)
    old = written + timedelta(minutes=1)
    result = reconcile_tick(instance, pg_resource, old.isoformat())
    assert result.skip_reason is None
    assert [a.details["run_id"] for a in list_alerts(pg, "open")] == [run_id]
    assert result.cursor and json.loads(result.cursor) == {"after": old.isoformat(), "settled": [run_id]}


def test_the_reconcile_cursor_is_read_back_and_goes_a_day_back_when_it_cannot_be() -> None:
    now = datetime(2026, 12, 5, 12, tzinfo=UTC)
    day_back = ReconcileCursor(after=datetime(2026, 12, 4, 12, tzinfo=UTC))
    unreadable = ["not a time", "[1]", '{"after": 5}', '{"after": "2026-12-05T11:55:00", "settled": [7]}']
    for text in [None, "", *unreadable]:
        assert ReconcileCursor.loads(text, now) == day_back, text
    cursor = ReconcileCursor(
        after=datetime(2026, 12, 5, 11, 55, tzinfo=UTC), settled=frozenset({"r-2", "r-1"})
    )
    assert json.loads(cursor.dumps()) == {"after": "2026-12-05T11:55:00+00:00", "settled": ["r-1", "r-2"]}
    assert ReconcileCursor.loads(cursor.dumps(), now) == cursor
    plain = ReconcileCursor(after=datetime(2026, 12, 5, 11, 55, tzinfo=UTC))  # settled: none
    assert ReconcileCursor.loads("2026-12-05T11:55:00+00:00", now) == plain
    assert ReconcileCursor.loads("2026-12-05T12:55:00+01:00", now) == plain  # compared in UTC
    assert ReconcileCursor.loads('{"after": "2026-12-05T11:55:00"}', now) == plain  # naive: UTC


def test_the_reconcile_window_says_how_far_back_it_reads_with_dates() -> None:
    """A first tick said '10 minutes before the cursor's 23:29:48' for a read a day and 10 minutes back
    (the cursor is yesterday's, and its date was left out)."""
    now = datetime(2026, 12, 5, 23, 29, 48, tzinfo=UTC)
    assert ReconcileCursor.loads(None, now).window(now) == (
        "runs updated after 2026-12-04 23:19:48 UTC: a first tick reads 1 day and 10 minutes back"
    )
    cursor = ReconcileCursor(after=datetime(2026, 12, 5, 23, 20, tzinfo=UTC), settled=frozenset({"r-1"}))
    assert cursor.window(now) == (
        "runs updated after 2026-12-05 23:10:00 UTC, 10 minutes before the cursor's 2026-12-05 23:20:00 UTC"
    )
