"""Finished Dagster runs per job and status, from the instance's run storage.

Counted like the ledger (`WindowedTally`), by when each run finished (`end_time`, set once by its
finishing event): runs that finished before the lookback window are summed once (one grouped query,
on the first scrape), and each scrape reads only the runs updated since, through the `runs` table's
(status, update_timestamp) index. Dagster bumps `update_timestamp` when a run's tags change, so a
run read again that had finished before the window is skipped, never added twice. A run without
`end_time` (storage from before Dagster kept it) is timed by `update_timestamp`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
import sqlalchemy as sa
from dagster._core.definitions.assets.job.asset_job import IMPLICIT_ASSET_JOB_NAME
from dagster._core.storage.runs.schema import RunsTable
from dagster._core.storage.runs.sql_run_storage import SqlRunStorage
from prometheus_client.core import Metric

from metrify_assets.contracts import CONTRACTS
from metrify_assets.observability.families import counter
from metrify_assets.observability.tally import WindowedTally

FINISHED = {
    dg.DagsterRunStatus.SUCCESS.value: "success",
    dg.DagsterRunStatus.FAILURE.value: "failure",
    dg.DagsterRunStatus.CANCELED.value: "canceled",
}

# Every job of the code location, named as `metrify_assets.schedules` and
# `metrify_assets.ingestion.definitions` name them (not imported: they load dbt's project and every
# asset), and Dagster's implicit job of the materialisations launched from the UI; a test checks them
# against the definitions.
SCHEDULED_JOBS = ("refresh_job", "daily_marts_job", "daily_job", "weekly_job")
DEFINED_JOBS = (
    *SCHEDULED_JOBS,
    *(f"ingest_{source}_job" for source in CONTRACTS),
    "meter_registry_job",  # meters/registry.py: run before ingestion when the registry file changed
    IMPLICIT_ASSET_JOB_NAME,
)


def _storage(instance: dg.DagsterInstance) -> SqlRunStorage:
    storage = instance.run_storage
    if not isinstance(storage, SqlRunStorage):
        raise TypeError(f"run storage {type(storage).__name__} is not SQL: its runs cannot be counted")
    return storage


def _finished_at(row: Any) -> datetime:
    """When the run finished, naive UTC like the storage's timestamps."""
    end = row["end_time"]
    if end is None:
        updated: datetime = row["update_timestamp"]
        return updated
    return datetime.fromtimestamp(end, UTC).replace(tzinfo=None)


def read_runs(instance: dg.DagsterInstance, tally: WindowedTally, lookback: timedelta) -> None:
    """Bring `tally` up to date with the finished runs (the storage keeps naive UTC timestamps)."""
    storage = _storage(instance)
    runs, updated = RunsTable.c, RunsTable.c.update_timestamp
    finished = runs.status.in_(list(FINISHED))
    cutoff = datetime.now(UTC).replace(tzinfo=None) - lookback
    if not tally.seeded:
        grouped = (
            sa.select(runs.pipeline_name, runs.status, sa.func.count().label("n"))
            .where(
                finished,
                sa.or_(
                    runs.end_time < cutoff.replace(tzinfo=UTC).timestamp(),
                    sa.and_(runs.end_time.is_(None), updated < cutoff),
                ),
            )
            .group_by(runs.pipeline_name, runs.status)
        )
        tally.seed(
            (
                ((row["pipeline_name"], FINISHED[row["status"]]), float(row["n"]))
                for row in storage.fetchall(grouped)
            ),
            cutoff,
        )
    recent = sa.select(runs.run_id, runs.pipeline_name, runs.status, runs.end_time, updated).where(
        finished, updated >= tally.settled_until
    )
    tally.update(
        (
            (row["run_id"], _finished_at(row), {(row["pipeline_name"], FINISHED[row["status"]]): 1.0})
            for row in storage.fetchall(recent)
        ),
        cutoff,
    )


def run_families(tally: WindowedTally, defined: Iterable[str] = DEFINED_JOBS) -> list[Metric]:
    """Every status of every job defined or seen, zeros included: `increase()` cannot see a series'
    first sample, so a job's first failure would pass unnoticed if its failure series only appeared
    with it (a job whose first run ever fails, too: its series are there, at 0, before it runs)."""
    metric = counter("metrify_pipeline_runs_total")
    totals = tally.totals()
    jobs = sorted({*defined, *(str(k[0]) for k in totals if isinstance(k, tuple))})
    for job in jobs:
        for status in FINISHED.values():
            metric.add_metric([job, status], totals.get((job, status), 0.0))
    return [metric]
