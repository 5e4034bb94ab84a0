"""A small `refresh_job` and `daily_job` over day partitions, a `weekly_job` of two parts and a grid
status ingest job, for what the CLI does with runs (their alerts, running failed days again) without
building the whole graph: `refresh_job` and the weekly model fail while a switch file exists, as a bug
would until its fix is deployed, and the ingest of a landing file that holds "bug" fails."""

# No `from __future__ import annotations`: Dagster reads the `config` annotation at runtime.

from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg

from metrify_assets.ingestion.landing import LandedFile
from metrify_assets.partitions import DAYS, SINGLE_RUN
from metrify_assets.resources import PostgresResource


class Switch(dg.ConfigurableResource):
    """A file whose presence breaks `day_figures`."""

    path: str


@dg.asset(partitions_def=DAYS, backfill_policy=SINGLE_RUN)
def day_figures(switch: Switch) -> None:
    if Path(switch.path).exists():
        raise ValueError("day_figures cannot divide by zero")


@dg.asset(partitions_def=DAYS, backfill_policy=SINGLE_RUN)
def day_report() -> None:
    """`daily_job`'s asset, which works."""


@dg.asset
def weekly_model(switch: Switch) -> None:
    """The part of `weekly_job` `metrify run` selects (the training)."""
    if Path(switch.path).exists():
        raise ValueError("weekly_model has no readings to train on")


@dg.asset
def weekly_cleanup() -> None:
    """The other part of `weekly_job` (the lifecycle), which works."""


INGEST_DAY = date(2026, 11, 30)


class LandingFileConfig(dg.Config):
    landing_file: str


@dg.asset
def ingest_grid_status(config: LandingFileConfig, postgres: PostgresResource) -> None:
    """Records the file's batch in the ledger as touching `INGEST_DAY`, as the real ingest does."""
    path = Path(config.landing_file)
    if "bug" in path.read_text():
        raise ValueError(f"ingest cannot parse {path.name}")
    batch_id = LandedFile.from_path(path).batch_id
    with postgres.connect() as conn:
        conn.execute(
            "INSERT INTO ops.ingest_ledger (batch_id, source, origin, origin_ref, raw_key, records_in, "
            "accepted, flagged, quarantined) VALUES (%s, 'grid_status', 'landing', %s, '', 1, 1, 0, 0)",
            (batch_id, path.name),
        )
        conn.execute(
            "INSERT INTO ops.ingest_days (batch_id, source, day, records) VALUES (%s, 'grid_status', %s, 1)",
            (batch_id, INGEST_DAY),
        )


def cli_defs(postgres: PostgresResource, switch: Path) -> dg.Definitions:
    """The four jobs, with the `postgres` the CLI's runs record their alerts in."""
    return dg.Definitions(
        assets=[day_figures, day_report, weekly_model, weekly_cleanup, ingest_grid_status],
        jobs=[
            dg.define_asset_job("refresh_job", selection=[day_figures]),
            dg.define_asset_job("daily_job", selection=[day_report]),
            dg.define_asset_job("weekly_job", selection=[weekly_model, weekly_cleanup]),
            dg.define_asset_job("ingest_grid_status_job", selection=[ingest_grid_status]),
        ],
        resources={"postgres": postgres, "switch": Switch(path=str(switch))},
        executor=dg.in_process_executor,
    )


@dg.op
def works() -> None:
    """A step that succeeds."""


def one_step_refresh_job() -> dg.JobDefinition:
    """A one-step job named as `refresh_job`, reconstructable (module level), so it can be re-executed."""
    return dg.GraphDefinition("refresh_job", node_defs=[works]).to_job(executor_def=dg.in_process_executor)


def reexecuted_success_context(
    instance: dg.DagsterInstance, tags: dict[str, str], sensor_name: str
) -> dg.RunStatusSensorContext:
    """A successful run of `one_step_refresh_job` with `tags`, re-executed as the UI's re-run button
    does (the UI gives the re-execution the parent's tags; `execute_job` is told to); the
    re-execution as a run-status sensor sees it."""
    job = dg.reconstructable(one_step_refresh_job)
    with dg.execute_job(job, instance, tags=tags) as first:
        assert first.success
    options = dg.ReexecutionOptions(parent_run_id=first.run_id)
    with dg.execute_job(job, instance, tags=tags, reexecution_options=options) as again:
        assert again.success
        events = again.all_events
    return _status_context(instance, again.run_id, events, sensor_name, None)


def success_context(
    instance: dg.DagsterInstance,
    job_name: str,
    tags: dict[str, str],
    sensor_name: str,
    resources: dict[str, Any] | None = None,
) -> dg.RunStatusSensorContext:
    """A successful run of a one-step job named `job_name` with `tags`, as a run-status sensor named
    `sensor_name` sees it."""
    result = (
        dg.GraphDefinition(job_name, node_defs=[works])
        .to_job()
        .execute_in_process(instance=instance, tags=tags)
    )
    return _status_context(instance, result.run_id, result.all_events, sensor_name, resources)


def _status_context(
    instance: dg.DagsterInstance,
    run_id: str,
    events: list[dg.DagsterEvent],
    sensor_name: str,
    resources: dict[str, Any] | None,
) -> dg.RunStatusSensorContext:
    run = instance.get_run_by_id(run_id)
    assert run is not None
    success = next(e for e in events if e.event_type == dg.DagsterEventType.RUN_SUCCESS)
    return dg.build_run_status_sensor_context(
        sensor_name=sensor_name,
        dagster_instance=instance,
        dagster_run=run,
        dagster_event=success,
        resources=resources,
    )
