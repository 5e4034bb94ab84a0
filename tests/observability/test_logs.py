"""Structured logs: a line logged inside a batch carries the batch's context (a real batch on
PostgreSQL), a Dagster run's lines carry its run id, and METRIFY_LOG_LEVEL / _FORMAT are honoured."""

from __future__ import annotations

import io
import json
import logging
import logging.config
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import psycopg
import pytest

from metrify_assets.contracts import METER_READINGS
from metrify_assets.env import LogSettings, resolve_logging
from metrify_assets.ingestion.batch import BatchSpec, process_batch
from metrify_assets.observability import logs
from metrify_assets.observability.runs import json_console_logger, run_loggers
from metrify_assets.observability.stages import trace_batch
from metrify_assets.resources.lake import Lake

NOW = pd.Timestamp("2026-04-01T00:00:00Z")


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """JSON lines of every `metrify_assets` logger at INFO and above."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    logger = logging.getLogger("metrify_assets")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield stream
    logger.removeHandler(handler)
    logger.setLevel(level)


@pytest.fixture
def root_handler() -> Iterator[None]:
    """`logs.configure` adds a root handler: removed again after the test."""
    levels = {name: logging.getLogger(name).level for name in logs.PROJECT_LOGGERS}
    yield
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, logs.StderrHandler)]:
        root.removeHandler(handler)
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


@pytest.mark.postgres
def test_a_line_logged_inside_a_batch_carries_its_context(
    pg: psycopg.Connection, tmp_path: Path, captured: io.StringIO
) -> None:
    messages = [
        json.dumps({"meter_id": "M1", "reading_start": "2026-03-29T00:00:00Z", "interval_minutes": 15,
                    "energy_kwh": 0.5}),
        "{broken",
    ]  # fmt: skip
    spec = BatchSpec(METER_READINGS, "logged-b1", "landing", "logged-b1.jsonl", date(2026, 3, 29))
    # Any quarantined record puts the score below 100: the batch logs its quality alert.
    process_batch(
        spec, messages, [1, 1], Lake(str(tmp_path / "lake")), pg, NOW, run_id="run-7", alert_threshold=100
    )
    pg.commit()  # fmt: skip

    (alert,) = lines(captured.getvalue())
    assert alert["level"] == "WARNING"
    assert alert["logger"] == "metrify_assets.ingestion.batch"
    assert "logged-b1" in alert["message"]
    assert (alert["batch_id"], alert["run_id"], alert["source"]) == ("logged-b1", "run-7", "meter_readings")
    assert set(alert) >= {"time", "level", "logger", "message"}
    assert alert["time"].endswith("+00:00")


def test_a_stage_names_itself_and_the_context_ends_with_the_batch(captured: io.StringIO) -> None:
    log = logging.getLogger("metrify_assets.tests")
    with trace_batch("grid_status", run_id="run-8") as batch:
        log.info("before the id is known")
        batch.identify("grid-b2")
        with batch.stage("decode"):
            log.info("decoding")
    log.info("after")
    before, during, after = lines(captured.getvalue())
    assert (before["source"], before["run_id"]) == ("grid_status", "run-8") and "batch_id" not in before
    assert (during["batch_id"], during["stage"], during["source"]) == ("grid-b2", "decode", "grid_status")
    assert not {"batch_id", "run_id", "source", "stage"} & set(after)
    assert "trace_id" not in during  # tracing is off: no span ids to add


def test_level_and_format_are_configured(root_handler: None, capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure(LogSettings(level="WARNING", format="json"))
    log = logging.getLogger("metrify_assets.tests")
    log.info("not shown")
    log.warning("shown")
    logging.getLogger("some.library").warning("a library's warning, same format")
    logging.getLogger("some.library").info("a library's info: its own WARNING default")
    chatty = logging.getLogger("some.chatty.library")
    chatty.setLevel(logging.INFO)  # as Dagster's `dagster.builtin` does
    chatty.info("a library's info, even at a level it set itself")
    emitted = lines(capsys.readouterr().err)
    assert [line["message"] for line in emitted] == ["shown", "a library's warning, same format"]

    logs.configure(LogSettings(level="DEBUG", format="text"))  # replaces its handler
    log.debug("in text")
    err = capsys.readouterr().err
    assert err.count("in text") == 1 and "DEBUG metrify_assets.tests: in text" in err
    assert not err.startswith("{")


def test_settings_are_validated() -> None:
    assert resolve_logging({}) == LogSettings(level="INFO", format=None)
    assert resolve_logging({"METRIFY_LOG_LEVEL": "debug", "METRIFY_LOG_FORMAT": "JSON"}) == LogSettings(
        "DEBUG", "json"
    )
    with pytest.raises(ValueError, match="METRIFY_LOG_LEVEL"):
        resolve_logging({"METRIFY_LOG_LEVEL": "loud"})
    with pytest.raises(ValueError, match="METRIFY_LOG_FORMAT"):
        resolve_logging({"METRIFY_LOG_FORMAT": "xml"})
    # Unset: text on a terminal, JSON otherwise (pytest's captured stderr is no terminal).
    assert logs.resolved_format(LogSettings()) == "json"
    assert run_loggers(LogSettings()) == {"console": json_console_logger}
    assert run_loggers(LogSettings(format="text")) == {}


def test_a_dagster_run_logs_json_with_its_run_id(
    root_handler: None, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.configure(LogSettings(format="json"))

    @dg.op
    def greet(context) -> None:  # type: ignore[no-untyped-def]  # a string annotation: Dagster refuses it
        context.log.info("from context.log")
        logging.getLogger("metrify_assets.tests").info("from a module logger")

    @dg.job(logger_defs=run_loggers(LogSettings(format="json")))
    def greeting() -> None:
        greet()

    # Dagster uses a job's loggers when the run config names them, as `execute_job` (the CLI) does.
    run_config = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
    result = greeting.execute_in_process(run_config=run_config, instance=dg.DagsterInstance.ephemeral())
    err = capsys.readouterr().err
    emitted = {line["message"]: line for line in lines(err)}
    dagster_line, module_line = emitted["from context.log"], emitted["from a module logger"]
    assert dagster_line["run_id"] == module_line["run_id"] == result.run_id
    assert (dagster_line["job"], dagster_line["step"]) == ("greeting", "greet")
    assert dagster_line["level"] == "INFO" and module_line["logger"] == "metrify_assets.tests"


def test_uvicorn_logs_in_the_same_format(capsys: pytest.CaptureFixture[str]) -> None:
    logging.config.dictConfig(logs.uvicorn_log_config(LogSettings(format="json")))
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', "10.0.0.1:5", "GET", "/healthz", "1.1", 200
    )
    logging.getLogger("uvicorn.error").warning("Shutting down")
    access, error = lines(capsys.readouterr().err)
    assert (access["logger"], access["message"]) == (
        "uvicorn.access",
        '10.0.0.1:5 - "GET /healthz HTTP/1.1" 200',
    )
    assert (error["logger"], error["level"]) == ("uvicorn.error", "WARNING")
    assert logs.uvicorn_log_config(LogSettings(format="text"))["formatters"]["metrify"]["()"].endswith(
        "TextFormatter"
    )


def test_the_api_factory_sets_up_logging_however_uvicorn_started_it(
    root_handler: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`uvicorn --factory ...:app_from_env` (the Kubernetes manifest) and each `--workers` process
    configure logs in the worker itself: Metrify's lines and uvicorn's in the configured format."""
    from metrify_assets.serving.app import app_from_env

    monkeypatch.setenv("METRIFY_HOME", str(tmp_path))
    monkeypatch.setenv("METRIFY_API_JWT_SECRET", "s" * 32)
    monkeypatch.setenv("METRIFY_LOG_FORMAT", "json")
    monkeypatch.setenv("METRIFY_LOG_LEVEL", "INFO")
    app_from_env()
    logging.getLogger("metrify_assets.serving.tests").info("from the API")
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', "10.0.0.9:1", "GET", "/readyz", "1.1", 200
    )
    mine, access = lines(capsys.readouterr().err)
    assert (mine["logger"], mine["level"], mine["message"]) == (
        "metrify_assets.serving.tests",
        "INFO",
        "from the API",
    )
    assert access["logger"] == "uvicorn.access" and "/readyz" in access["message"]


class _MeterFileUnreadableError(Exception):
    """The root of the failing step's cause chain."""


def test_a_failed_step_logs_why(root_handler: None, capsys: pytest.CaptureFixture[str]) -> None:
    """Dagster's line for a failed step says only `Execution of step "x" failed.`: Metrify's line
    adds the error behind Dagster's wrapper and the root of its cause chain."""
    logs.configure(LogSettings(format="json"))

    @dg.asset
    def logs_failing_asset() -> None:
        try:
            raise _MeterFileUnreadableError("meter M-LOG-FAIL-1: file\n  truncated")
        except _MeterFileUnreadableError as err:
            raise RuntimeError("could not read the day's readings") from err

    defs = dg.Definitions(
        assets=[logs_failing_asset],
        jobs=[dg.define_asset_job("logs_failing_job")],
        loggers=run_loggers(LogSettings(format="json")),
    )
    run_config = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
    result = defs.resolve_job_def("logs_failing_job").execute_in_process(
        run_config=run_config, instance=dg.DagsterInstance.ephemeral(), raise_on_error=False
    )
    assert not result.success
    failed = [line for line in lines(capsys.readouterr().err) if line.get("step") == "logs_failing_asset"]
    messages = [line["message"] for line in failed if line["level"] == "ERROR"]
    assert messages == [
        'Execution of step "logs_failing_asset" failed: RuntimeError: could not read the day\'s readings'
        " (root cause: _MeterFileUnreadableError: meter M-LOG-FAIL-1: file truncated)"
    ]
