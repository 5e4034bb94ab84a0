"""How a failure is handled, by what caused it (the error flow of docs/reliability.md).

- **Data errors** (a record that breaks the contract or a rule) never raise: they are quarantined
  (and dead-lettered for Kafka) with a reason, and the batch goes on.
- **Business-rule findings** (a plausible but suspicious record) are accepted and queued for review.
- **System errors** (database, broker or lake unreachable, a timeout, a deadlock) are transient: the
  step is retried with exponential backoff and jitter (`RETRY_POLICY`), then the run fails, an alert
  is recorded, and the sensor re-requests the batch on a later tick.
- **Bugs** (any other exception in a stage) fail the step at once: retrying the same input through
  the same code gives the same error. The batch is re-requested like any failed one, so it is
  ingested once the fix is deployed; a downstream day is rebuilt by its next run (`metrify run`
  runs the failed ones again).

Only steps that classify their errors retry: each Python asset carries `retry_policy=RETRY_POLICY`
and `@classified_step` (or `with classified(...)` around its body), and the jobs set no retry
policy of their own. The dbt build retries its connections itself (dbt_project/profiles.yml).
"""

from __future__ import annotations

import functools
import inspect
import socket
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar, cast

import dagster as dg
import psycopg
from botocore.exceptions import BotoCoreError, ClientError
from dagster_shared.error import SerializableErrorInfo

from metrify_assets.causes import causes

# OperationalError covers a lost connection, a server restart, deadlocks and serialization failures.
# A broker's errors (kafka-python's `KafkaError`) are system errors too: `system_errors` adds them.
SYSTEM_ERRORS: tuple[type[BaseException], ...] = (
    psycopg.OperationalError,
    BotoCoreError,
    ClientError,
    ConnectionError,
    TimeoutError,
    socket.gaierror,
)

# Waits of 1, 3, 7 and 15 s, each +/- 1 s (Dagster: (2^n - 1) x delay): about 26 s, which spans a
# database or broker restart.
RETRY_POLICY = dg.RetryPolicy(
    max_retries=4, delay=1.0, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)


# Dagster's wrappers around the error that made a step fail: retries exhausted, a classified bug,
# an exception of a step that does not classify its errors.
_WRAPPERS = {"RetryRequestedFromPolicy", "RetryRequested", "Failure", "DagsterExecutionStepExecutionError"}


def root_error(error: SerializableErrorInfo) -> SerializableErrorInfo:
    """The error behind a step failure's wrappers: it names what went wrong."""
    while error.cause is not None and error.cls_name in _WRAPPERS:
        error = error.cause
    return error


def bare_error_message(error: SerializableErrorInfo) -> str:
    """The error's message without the `module.Class: ` head that Python's exception formatting
    puts in front of it: `cls_name` already names the class."""
    message: str = (error.message or "").strip()
    head, sep, rest = message.partition(": ")
    named = head == error.cls_name or head.endswith(f".{error.cls_name}")
    if named and sep:
        return rest.strip()
    return "" if named else message


def named_error(error: SerializableErrorInfo) -> str:
    """`Class: message`, the error's type named once (its message alone when it has none)."""
    name, message = error.cls_name or "Error", bare_error_message(error)
    return f"{name}: {message}" if message else name


def system_errors() -> tuple[type[BaseException], ...]:
    """`SYSTEM_ERRORS`, with kafka-python's `KafkaError` once kafka-python is loaded: only then can
    one be raised, and importing it for this would cost every command (`metrify status` among them)
    about 0.3 s of start-up whether it talks to Kafka or not."""
    kafka_errors = sys.modules.get("kafka.errors")
    return SYSTEM_ERRORS if kafka_errors is None else (*SYSTEM_ERRORS, kafka_errors.KafkaError)


def is_system_error(err: BaseException) -> bool:
    """True when `err`, or what caused it, is a service being unavailable rather than the code."""
    kinds = system_errors()
    return any(isinstance(cause, kinds) for cause in causes(err))


@contextmanager
def classified(step: str) -> Iterator[None]:
    """Let system errors through (the step's retry policy retries them); turn a bug into a Failure
    that skips the retries, naming its type, so the run log says which kind of failure it was."""
    try:
        yield
    except dg.Failure:
        raise
    except Exception as err:
        if is_system_error(err):
            raise
        raise dg.Failure(
            description=(
                f"{step}: {type(err).__name__}: {err}. Not an outage: not retried, as the same input "
                "through the same code fails the same way. A failed batch is re-requested, a failed day "
                "rebuilt by its next run, so either is done once the cause is fixed."
            ),
            metadata={"error_type": type(err).__name__, "classified_as": "bug"},
            allow_retries=False,
        ) from err


P = ParamSpec("P")
R = TypeVar("R")


def classified_step(fn: Callable[P, R]) -> Callable[P, R]:
    """`classified` around an asset's whole body (a generator's too), named after the function: put
    it under the asset decorator of any asset that has `retry_policy=RETRY_POLICY`."""
    step = fn.__name__
    if inspect.isgeneratorfunction(fn):
        generator = cast(Callable[..., Iterator[Any]], fn)

        @functools.wraps(fn)
        def stream(*args: Any, **kwargs: Any) -> Iterator[Any]:
            with classified(step):
                return (yield from generator(*args, **kwargs))

        return cast(Callable[P, R], stream)

    @functools.wraps(fn)
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        with classified(step):
            return fn(*args, **kwargs)

    return call
