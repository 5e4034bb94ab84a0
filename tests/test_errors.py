"""Error classification: system errors are retried by the step's policy, bugs fail at once."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import dagster as dg
import psycopg
import pytest
from botocore.exceptions import EndpointConnectionError
from kafka.errors import KafkaConnectionError

from metrify_assets.errors import RETRY_POLICY, classified, classified_step, is_system_error
from metrify_assets.ingestion.kafka.batches import RangeReadError
from metrify_assets.meters.registry import meter_registry
from metrify_assets.orchestration.instance import RunFailedError, execute_job
from metrify_assets.resources import LandingResource, PostgresResource


@pytest.mark.parametrize(
    "err",
    [
        psycopg.OperationalError("connection refused"),
        KafkaConnectionError(),
        EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
        RangeReadError("read up to offset 3 of [0, 10) in 300s"),
        ConnectionResetError(),
    ],
    ids=lambda e: type(e).__name__,
)
def test_outages_and_timeouts_are_system_errors_and_pass_through_to_the_retry_policy(err: Exception) -> None:
    assert is_system_error(err)
    with pytest.raises(type(err)), classified("ingest_x"):
        raise err


def test_a_system_error_wrapped_by_a_library_is_still_one() -> None:
    try:
        try:
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        except psycopg.OperationalError as inner:
            raise RuntimeError("upsert failed") from inner
    except RuntimeError as outer:
        assert is_system_error(outer)


def test_a_bug_becomes_a_failure_that_skips_the_retries() -> None:
    with pytest.raises(dg.Failure) as caught, classified("ingest_x"):
        raise AttributeError("'NoneType' object has no attribute 'encode'")
    assert caught.value.allow_retries is False
    assert "AttributeError" in (caught.value.description or "")
    assert not is_system_error(KeyError("x"))


def test_retry_policy_backs_off_exponentially_with_jitter() -> None:
    assert RETRY_POLICY.max_retries >= 3
    assert RETRY_POLICY.backoff == dg.Backoff.EXPONENTIAL
    assert RETRY_POLICY.jitter == dg.Jitter.PLUS_MINUS


SCHEDULED_JOBS = ("refresh_job", "daily_marts_job", "daily_job", "weekly_job")
# Not Python steps of metrify's: dbt retries its own connections (dbt_project/profiles.yml); the
# freshness checks and the Snowflake load run once a run.
UNRETRIED = {"metrify_dbt", "dbt_source_freshness", "warehouse_load"}


def is_classified(op: dg.OpDefinition) -> bool:
    body = getattr(op.compute_fn, "decorated_fn", op.compute_fn)
    return body.__code__.co_qualname.startswith(f"{classified_step.__name__}.")


@pytest.mark.parametrize("job", SCHEDULED_JOBS)
def test_a_scheduled_jobs_steps_retry_only_where_they_classify_their_errors(job: str) -> None:
    """A job-wide retry policy would retry bugs: each step's own policy goes with its classification."""
    from metrify_assets.definitions import defs

    job_def = defs().resolve_job_def(job)
    assert job_def.op_retry_policy is None
    ops = {node.definition.name: node.definition for node in job_def.graph.nodes}
    python = {name: op for name, op in ops.items() if name not in UNRETRIED}
    assert python, job
    for name, op in python.items():
        assert isinstance(op, dg.OpDefinition)
        assert (op.retry_policy, is_classified(op)) == (RETRY_POLICY, True), name
    for name in ops.keys() & UNRETRIED:
        assert ops[name].retry_policy is None, name


REGISTRY_HEADER = "meter_id,segment,region,weather_station_id,grid_node_id,tariff,timezone,installed_on\n"


def materialise_registry(tmp_path: Path, row: str, postgres: PostgresResource) -> dg.ExecuteInProcessResult:
    """`meter_registry` as the jobs run it, over a registry file holding `row`."""
    landing = tmp_path / "landing"
    (landing / "reference").mkdir(parents=True, exist_ok=True)
    (landing / "reference" / "meters.csv").write_text(REGISTRY_HEADER + row + "\n")
    return dg.materialize(
        [meter_registry],
        resources={"landing": LandingResource(directory=str(landing)), "postgres": postgres},
        raise_on_error=False,
    )


def restarts(result: dg.ExecuteInProcessResult) -> int:
    return sum(e.event_type == dg.DagsterEventType.STEP_RESTARTED for e in result.all_events)


@pytest.mark.postgres
def test_a_bug_in_a_downstream_asset_fails_its_step_after_one_attempt(
    pg_resource: PostgresResource, tmp_path: Path
) -> None:
    """The new-user trial's case: PostgreSQL refuses a value (a psycopg.DataError) in refresh_job's
    first step, which was retried four times, about a minute with the backoff."""
    began = time.monotonic()
    result = materialise_registry(tmp_path, "MTR-1,residential,north,,,standard,UTC,not-a-date", pg_resource)
    assert not result.success
    assert restarts(result) == 0
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    error = failure.step_failure_data.error
    assert error is not None and error.cls_name == "Failure"
    assert "meter_registry: InvalidDatetimeFormat" in error.message and "not retried" in error.message
    assert issubclass(psycopg.errors.InvalidDatetimeFormat, psycopg.DataError)
    assert time.monotonic() - began < 10


@pytest.mark.postgres
def test_an_outage_in_a_downstream_asset_is_retried_with_backoff(tmp_path: Path) -> None:
    """Nothing listens on the database's port: every attempt is refused, then the step fails."""
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    down = PostgresResource(url=f"postgresql://postgres@127.0.0.1:{port}/postgres?connect_timeout=2")
    began = time.monotonic()
    result = materialise_registry(tmp_path, "MTR-1,residential,north,,,standard,UTC,2020-01-01", down)
    assert not result.success
    assert restarts(result) == RETRY_POLICY.max_retries
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    error = failure.step_failure_data.error
    assert error is not None and "OperationalError" in str(error.to_string())
    assert time.monotonic() - began >= 22  # the waits: 1, 3, 7 and 15 s, each +/- 1 s


class MeterIdError(ValueError):
    """A bug's error type defined in a module, which Python's formatting names with its module."""


@dg.asset
def parses_meter_ids() -> None:
    raise MeterIdError("meter ERR-FMT-1 has no id")


def test_a_failed_runs_error_names_its_type_once_without_its_module() -> None:
    """`metrify run` prints `RunFailedError`: it read 'tests.test_errors.MeterIdError: meter ...'."""
    defs = dg.Definitions(
        assets=[parses_meter_ids], jobs=[dg.define_asset_job("parse_job")], executor=dg.in_process_executor
    )
    with pytest.raises(RunFailedError) as failed:
        execute_job(defs, "parse_job", dg.DagsterInstance.ephemeral())
    error = str(failed.value)
    assert error.endswith("): MeterIdError: meter ERR-FMT-1 has no id"), error
