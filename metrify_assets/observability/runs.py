"""Logs and traces of the Dagster code location's processes (the code server, the runs it forks).

Metrify's modules log through `logging`: inside a run those lines go to the root handler of
`logs.configure` (set up as the location loads), with the run id from the batch's log context or the
op being executed. Dagster's own run log (`context.log`, run events) goes to the run's Dagster
loggers: a job uses the loggers its run config names, so `json_console_logger` replaces the default
`console` logger in the runs whose config names `console` (`metrify run`, a launchpad config); runs
the sensors request keep Dagster's text console, their events being in the event log anyway. Listing
`metrify_assets` in dagster.yaml's `python_logs.managed_python_loggers` also copies Metrify's lines
into each run's event log (the UI); the JSON lines do not need it.
"""

from __future__ import annotations

import logging

import dagster as dg

from metrify_assets.env import LogSettings, Settings
from metrify_assets.observability import logs, tracing

DAGSTER_SERVICE = "metrify-dagster"


@dg.logger(
    config_schema={
        "log_level": dg.Field(str, is_required=False, default_value="INFO"),
        "name": dg.Field(str, is_required=False, default_value="dagster"),
    },
    description="Dagster's run log as JSON lines on stderr (Metrify's log format).",
)
def json_console_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    config = init_context.logger_config
    logger = logging.Logger(config["name"], level=config["log_level"].upper())
    handler = logs.StderrHandler()
    handler.setFormatter(logs.JsonFormatter())
    logger.addHandler(handler)
    return logger


def run_loggers(settings: LogSettings) -> dict[str, dg.LoggerDefinition]:
    """The jobs' default loggers: `console` in JSON when logs are JSON, else Dagster's own. Same name
    and config as Dagster's, so run config that sets `console`'s level keeps working."""
    return {"console": json_console_logger} if logs.resolved_format(settings) == "json" else {}


def configure_location(settings: Settings) -> dict[str, dg.LoggerDefinition]:
    """Set up logging and tracing of this process (as the code location loads) and return the
    jobs' loggers."""
    logs.configure(settings.log)
    tracing.configure(settings.tracing, DAGSTER_SERVICE)
    return run_loggers(settings.log)
