"""Landing-directory sensors: one run per new file, and no holes left by failed runs.

Ticks only list file names (no payloads): the run reads its file. The cursor is the newest landing
`seq` requested. Because the cursor moves when runs are requested, each tick also reconciles: a file
at or below the cursor that the ledger does not hold, and whose runs all failed, is requested again,
at once after its first failure and then after a growing wait (`retry_delay`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import dagster as dg

from metrify_assets.contracts import SourceContract
from metrify_assets.ingestion.landing import LandedFile, list_landed
from metrify_assets.resources import LandingResource, PostgresResource
from metrify_assets.storage.writes import ledger_batch_ids

MAX_RUNS_PER_TICK = 50
BATCH_TAG = "metrify/batch_id"


def ingest_job_name(source: str) -> str:
    """The job that ingests one batch of `source` (`ingestion.definitions.INGEST_JOBS`)."""
    return f"ingest_{source}_job"


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

    `done` holds batch ids in the ledger; `retry_counts` maps batch ids whose runs all failed and are
    due to be requested again (`due_retries`) to how many runs they had.
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


FIRST_RETRY_WAIT = timedelta(minutes=1)
LONGEST_RETRY_WAIT = timedelta(hours=1)


def retry_delay(runs: int) -> timedelta:
    """How long after the last of a batch's `runs` failed runs it is requested again. At once after the
    first (most failures pass: a database restart, a broker electing a leader), then 1, 2, 4 ...
    minutes up to an hour, so a batch that fails every time (a bug, until it is fixed) costs a failed
    run and an alert refresh an hour, not one per sensor tick. Pure: unit-tested."""
    if runs <= 1:
        return timedelta(0)
    return min(FIRST_RETRY_WAIT * 2 ** (runs - 2), LONGEST_RETRY_WAIT)


@dataclass(frozen=True)
class FailedBatch:
    """A batch whose every run ended without success."""

    runs: int
    last_ended: datetime

    @property
    def next_try(self) -> datetime:
        return self.last_ended + retry_delay(self.runs)


def run_ended_at(record: dg.RunRecord) -> datetime:
    """When a finished run ended (its last update when it never started: canceled in the queue)."""
    return (
        datetime.fromtimestamp(record.end_time, UTC)
        if record.end_time is not None
        else record.update_timestamp
    )


def failed_batches(instance: dg.DagsterInstance, batch_ids: Iterable[str]) -> dict[str, FailedBatch]:
    """Batch ids whose every run has ended without success: how many runs they had, when the last ended."""
    out: dict[str, FailedBatch] = {}
    for batch_id in batch_ids:
        records = instance.get_run_records(filters=dg.RunsFilter(tags={BATCH_TAG: batch_id}))
        statuses = [r.dagster_run.status for r in records]
        if records and all(s not in _IN_FLIGHT and s != dg.DagsterRunStatus.SUCCESS for s in statuses):
            out[batch_id] = FailedBatch(len(records), max(run_ended_at(r) for r in records))
    return out


def due_retries(
    failed: dict[str, FailedBatch], now: datetime | None
) -> tuple[dict[str, int], dict[str, FailedBatch]]:
    """Split failed batches into those to request again now (with their run counts, for the run key)
    and those still waiting out their `retry_delay` (none when `now` is None: a person's command
    requests them all). Pure: unit-tested."""
    due = {b: f.runs for b, f in failed.items() if now is None or f.next_try <= now}
    return due, {b: f for b, f in failed.items() if b not in due}


def waiting_text(waiting: dict[str, FailedBatch]) -> str:
    """The skip reason's account of failed batches not yet requested again ('' when none)."""
    if not waiting:
        return ""
    batch_id, soonest = min(waiting.items(), key=lambda item: item[1].next_try)
    return (
        f"; {len(waiting)} failed batch(es) wait to be requested again, the next {batch_id} "
        f"({soonest.runs} failed runs) at {soonest.next_try:%Y-%m-%d %H:%M:%S} UTC"
    )


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
        with postgres.connect() as conn:  # a file past the cursor is requested whether ingested or not
            done = ledger_batch_ids(conn, [f.batch_id for f in files if f.seq <= cursor])
        stale = [f.batch_id for f in files if f.seq <= cursor and f.batch_id not in done]
        due, waiting = due_retries(failed_batches(context.instance, stale), datetime.now(UTC))
        planned, new_cursor = plan_landing_runs(files, cursor, done, due)
        if not planned:
            return dg.SkipReason(
                f"No new {source} files in {landing.path / source} ({len(files)} seen){waiting_text(waiting)}."
            )
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
