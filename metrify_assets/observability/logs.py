"""Structured logs: one JSON object per line, carrying the batch, run, source and stage it belongs to.

The context fields live in a context variable set where a batch or run starts (`log_context`), so any
log line inside a batch carries them without being passed them; the current span's trace and span
ids are added when a span is active, to go from a log line to its trace. `configure` puts one handler
on the root logger (Metrify's loggers at METRIFY_LOG_LEVEL, others at their WARNING default);
`uvicorn_log_config` gives the API server's own logs the same format. docs/operations.md#logs.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, TextIO

import orjson
from opentelemetry import trace

from metrify_assets.env import LogSettings

CONTEXT_FIELDS = ("batch_id", "run_id", "source", "stage")
PROJECT_LOGGERS = ("metrify_assets", "metrify_platform")

_context: ContextVar[Mapping[str, str]] = ContextVar("metrify_log_context", default=MappingProxyType({}))


@contextmanager
def log_context(**fields: str | None) -> Iterator[None]:
    """Log lines inside the block carry `fields` (None: left as it is)."""
    token = _context.set({**_context.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def bind(**fields: str | None) -> None:
    """Add `fields` to the current context until the enclosing `log_context` ends (a batch's id,
    known once the batch is read)."""
    _context.set({**_context.get(), **{k: v for k, v in fields.items() if v is not None}})


def context_fields() -> Mapping[str, str]:
    return _context.get()


def _dagster_run_id() -> str | None:
    """The run of the Dagster op this thread is executing, if any (only when Dagster is loaded)."""
    if "dagster" not in sys.modules:
        return None
    import dagster as dg

    try:
        return dg.OpExecutionContext.get().run_id
    except dg.DagsterInvariantViolationError:
        return None


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """What a line says about `record`: the context fields, Dagster's run and step for a record
    Dagster routed (`dagster_meta`), and the active span's ids."""
    fields: dict[str, Any] = dict(_context.get())
    meta = getattr(record, "dagster_meta", None)
    if isinstance(meta, Mapping):
        fields.setdefault("run_id", meta.get("run_id"))
        for key, name in (("job_name", "job"), ("step_key", "step")):
            if meta.get(key):
                fields[name] = meta[key]
    if not fields.get("run_id"):
        fields.pop("run_id", None)
        run_id = _dagster_run_id()
        if run_id:
            fields["run_id"] = run_id
    span = trace.get_current_span().get_span_context()
    if span.is_valid:
        fields["trace_id"] = format(span.trace_id, "032x")
        fields["span_id"] = format(span.span_id, "016x")
    return fields


ERROR_TEXT_LIMIT = 300  # characters of each error in a line: a dbt error can run to pages


def error_text(error: Any) -> str:
    """`Class: message` of a Dagster error on one line, at most ERROR_TEXT_LIMIT characters."""
    from metrify_assets.errors import named_error  # imports Dagster, loaded already when it routes a record

    text = " ".join(named_error(error).split())
    return text if len(text) <= ERROR_TEXT_LIMIT else text[: ERROR_TEXT_LIMIT - 1] + "…"


def event_error(meta: Mapping[str, Any]) -> tuple[str, str | None] | None:
    """The error a Dagster event carries (a failed step, a retry, a failed run): the error behind
    Dagster's wrappers and, when it had a cause, the root of its cause chain; None without one."""
    error = getattr(getattr(meta.get("dagster_event"), "event_specific_data", None), "error", None)
    if error is None:
        return None
    from metrify_assets.errors import root_error  # imports Dagster, loaded already when it routes a record

    error = root_error(error)
    root = error
    while root.cause is not None:
        root = root.cause
    return error_text(error), (error_text(root) if root is not error else None)


def _message(record: logging.LogRecord) -> str:
    """The record's message; for a Dagster event that carries an error (`Execution of step "x"
    failed.`), the error's class and message and its root cause, so the line says why."""
    meta = getattr(record, "dagster_meta", None)
    if not (isinstance(meta, Mapping) and isinstance(meta.get("orig_message"), str)):
        return record.getMessage()
    message: str = meta["orig_message"]  # without Dagster's "job - run - step - " prefix
    error = event_error(meta)
    if error is None:
        return message
    text, root = error
    return f"{message.rstrip('.')}: {text}" + (f" (root cause: {root})" if root else "")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, the context fields,
    trace_id/span_id, and the exception's traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": _message(record),
            **record_fields(record),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(line, default=str).decode()


class TextFormatter(logging.Formatter):
    """`time level logger: message [key=value ...]`, for a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = {k: v for k, v in record_fields(record).items() if k not in ("trace_id", "span_id")}
        return text + "".join(f" {k}={v}" for k, v in fields.items()) if fields else text


class StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever `sys.stderr` is when a record is emitted (not when the handler was made),
    so a CLI runner or a test that swaps stderr still gets the lines."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass  # always sys.stderr


def resolved_format(settings: LogSettings) -> str:
    """json or text: the setting, else text on a terminal and JSON otherwise (a container, a
    Dagster run, a pipe to a log shipper)."""
    return settings.format or ("text" if sys.stderr.isatty() else "json")


def formatter(settings: LogSettings) -> logging.Formatter:
    return JsonFormatter() if resolved_format(settings) == "json" else TextFormatter()


def _project_or_warning(record: logging.LogRecord) -> bool:
    """Libraries speak at WARNING and above, whatever level they set themselves (Dagster's own
    `dagster.builtin` logger is at INFO: every dbt command it runs would be a line)."""
    return record.levelno >= logging.WARNING or record.name.split(".", 1)[0] in PROJECT_LOGGERS


def configure(settings: LogSettings) -> None:
    """Metrify's loggers at `settings.level`, through one root handler in `settings`'s format. Called
    again (another CLI command in the same process), it replaces its handler rather than adding one."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, StderrHandler)]:
        root.removeHandler(handler)
    handler = StderrHandler()
    handler.setFormatter(formatter(settings))
    handler.addFilter(_project_or_warning)
    root.addHandler(handler)
    for name in PROJECT_LOGGERS:
        logging.getLogger(name).setLevel(settings.level)


def uvicorn_log_config(settings: LogSettings) -> dict[str, Any]:
    """uvicorn's `log_config`: its server and access logs in `settings`'s format."""
    use = f"{__name__}.{'JsonFormatter' if resolved_format(settings) == 'json' else 'TextFormatter'}"
    handler = {"()": f"{__name__}.StderrHandler", "formatter": "metrify"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"metrify": {"()": use}},
        "handlers": {"metrify": handler},
        "loggers": {
            "uvicorn": {"handlers": ["metrify"], "level": "INFO", "propagate": False},
            "uvicorn.error": {"level": "INFO"},
            "uvicorn.access": {"handlers": ["metrify"], "level": "INFO", "propagate": False},
        },
    }
