"""Error classification: system errors are retried by the step's policy, bugs fail at once."""

from __future__ import annotations

import dagster as dg
import psycopg
import pytest
from botocore.exceptions import EndpointConnectionError
from kafka.errors import KafkaConnectionError

from metrify_assets.errors import RETRY_POLICY, classified, is_system_error
from metrify_assets.ingestion.kafka.batches import RangeReadError


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
