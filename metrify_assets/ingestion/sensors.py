"""Landing-directory sensors: one run per new file, and no holes left by failed runs.

Ticks only list file names (no payloads): the run reads its file. The cursor is the newest landing
`seq` requested. Because the cursor moves when runs are requested, each tick also reconciles: a file
at or below the cursor that the ledger does not hold, and whose runs all failed, is requested again.
"""

from __future__ import annotations

from collections.abc import Iterable

import dagster as dg

from metrify_assets.contracts import SourceContract
from metrify_assets.ingestion.landing import LandedFile, list_landed
from metrify_assets.resources import LandingResource, PostgresResource
from metrify_assets.storage.writes import ledger_batch_ids

MAX_RUNS_PER_TICK = 50
BATCH_TAG = "metrify/batch_id"
_IN_FLIGHT = (
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
)


def landing_run_config(source: str, landed: LandedFile) -> dict[str, object]:
    """Run config that points the ingest op at one landing file."""
    return {"ops": {f"ingest_{source}": {"config": {"landing_file": str(landed.path)}}}}


def plan_landing_runs(
    files: Iterable[LandedFile],
    cursor: int,
    done: set[str],
    retry_counts: dict[str, int],
    limit: int = MAX_RUNS_PER_TICK,
) -> tuple[list[tuple[LandedFile, str]], int]:
    """Decide which files to request (with their run keys) and the new cursor. Pure: unit-tested.

    `done` holds batch ids in the ledger; `retry_counts` maps batch ids whose runs all failed to how
    many runs they had, and is empty for batches with a run in flight or none at all.
    """
    planned: list[tuple[LandedFile, str]] = []
    new_cursor = cursor
    for landed in files:
        if len(planned) >= limit:
            break
        if landed.seq > cursor:
            planned.append((landed, landed.batch_id))
            new_cursor = max(new_cursor, landed.seq)
        elif landed.batch_id not in done and landed.batch_id in retry_counts:
            planned.append((landed, f"{landed.batch_id}-retry-{retry_counts[landed.batch_id]}"))
    return planned, new_cursor


def failed_batches(instance: dg.DagsterInstance, batch_ids: Iterable[str]) -> dict[str, int]:
    """Batch ids whose every run has ended without success, with the number of runs they had."""
    out: dict[str, int] = {}
    for batch_id in batch_ids:
        runs = instance.get_runs(filters=dg.RunsFilter(tags={BATCH_TAG: batch_id}))
        if runs and all(r.status not in _IN_FLIGHT and r.status != dg.DagsterRunStatus.SUCCESS for r in runs):
            out[batch_id] = len(runs)
    return out


def build_landing_sensor(
    contract: SourceContract, job: dg.UnresolvedAssetJobDefinition
) -> dg.SensorDefinition:
    source = contract.source

    @dg.sensor(
        name=f"landing_{source}_sensor",
        job=job,
        minimum_interval_seconds=30,
        description=f"Requests one ingest run per new {source} file in the landing directory.",
    )
    def _sensor(
        context: dg.SensorEvaluationContext, landing: LandingResource, postgres: PostgresResource
    ) -> dg.SensorResult | dg.SkipReason:
        files = list_landed(landing.path, source)
        cursor = int(context.cursor or 0)
        with postgres.connect() as conn:
            done = ledger_batch_ids(conn, source)
        stale = [f.batch_id for f in files if f.seq <= cursor and f.batch_id not in done]
        planned, new_cursor = plan_landing_runs(files, cursor, done, failed_batches(context.instance, stale))
        if not planned:
            return dg.SkipReason(f"No new {source} files in {landing.path / source} ({len(files)} seen).")
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(
                    run_key=run_key,
                    run_config=landing_run_config(source, landed),
                    tags={BATCH_TAG: landed.batch_id, "metrify/source": source},
                )
                for landed, run_key in planned
            ],
            cursor=str(new_cursor),
        )

    return _sensor
