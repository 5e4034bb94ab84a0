"""The weekly job's lifecycle part, executed in this process (`metrify lifecycle run`, the demo): the
cold and archive tiers over the days with a copy still to move, then retention, on a given clock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import dagster as dg
import psycopg

from metrify_assets.orchestration.instance import execute_job
from metrify_assets.partitions import TRIGGER_TAG, partition_range_tags
from metrify_assets.schedules import LIFECYCLE_TIERS, lifecycle_range

LIFECYCLE_ASSETS = (*LIFECYCLE_TIERS, "retention_cleanup")
# A dry run's tag: it moved and deleted nothing, so it is not the job's last run (`metrify status`).
DRY_RUN_TAG = "metrify/dry_run"


@dataclass(frozen=True)
class LifecycleRun:
    run_id: str
    as_of: date
    dry_run: bool
    days: tuple[date, date] | None  # the tiers' range; None: no copy could move


def run_lifecycle(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    conn: psycopg.Connection,
    as_of: date,
    dry_run: bool = False,
    trigger: str = "cli",
    config: dict[str, object] | None = None,
) -> LifecycleRun:
    """One run of `weekly_job`'s lifecycle assets as of `as_of` (the retraining is left to the schedule);
    `config` is the rest of the lifecycle's run configuration (the policy)."""
    span = lifecycle_range(conn, as_of)
    conn.commit()
    config = {**(config or {}), "as_of": as_of.isoformat(), "dry_run": dry_run}
    selected = list(LIFECYCLE_ASSETS) if span else ["retention_cleanup"]
    result = execute_job(
        defs,
        "weekly_job",
        instance,
        run_config={"ops": {name: {"config": config} for name in selected}},
        tags={
            **(partition_range_tags(*span) if span else {}),
            TRIGGER_TAG: trigger,
            **({DRY_RUN_TAG: "true"} if dry_run else {}),
        },
        asset_selection=selected,
    )
    return LifecycleRun(result.run_id, as_of, dry_run, span)
