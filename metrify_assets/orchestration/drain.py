"""`metrify kafka drain`: ingest everything in the topics now, through the sensor's planning and the
ingest job, executed in this process (like `catchup.ingest_files` for landing files).

It starts from the ingest group's committed offsets, so a second drain only takes what is new, and
replaying is harmless anyway (ranges are idempotent batches).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import dagster as dg

from metrify_assets.contracts import CONTRACTS
from metrify_assets.ingestion.kafka.ranges import dump_cursor
from metrify_assets.ingestion.kafka.sensor import kafka_tick
from metrify_assets.ingestion.sensors import BATCH_TAG
from metrify_assets.orchestration.instance import RunFailedError, execute_job
from metrify_assets.resources import PostgresResource
from metrify_assets.resources.kafka import KafkaResource
from metrify_assets.resources.kafka_offsets import committed_offsets


@dataclass(frozen=True)
class DrainSummary:
    batches: int
    records: int
    accepted: int
    quarantined: int
    seconds: float
    failed: dict[str, str] = field(default_factory=dict)  # ranges whose runs failed: batch id -> error

    @property
    def records_per_second(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0


def drain(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    kafka: KafkaResource,
    postgres: PostgresResource,
    sources: Iterable[str] = tuple(CONTRACTS),
    on_batch: Callable[[str], None] | None = None,
) -> DrainSummary:
    """Tick and run until every source's topic has no unplanned range; counts come from the ledger.

    A range whose run fails (after its step retries) does not stop the drain: the others are still
    ingested, and the failed ones are returned in `failed` (the next drain or sensor tick requests
    them again)."""
    if not kafka.configured:
        raise ValueError("Kafka is not configured: set KAFKA_BOOTSTRAP_SERVERS")
    started = time.monotonic()
    batch_ids: list[str] = []
    failed: dict[str, str] = {}  # batch id -> why its run failed (after its retries)
    for source in sources:
        committed = committed_offsets(kafka, kafka.topic(source))
        cursor: str | None = dump_cursor(committed) if committed else None
        while isinstance(
            tick := kafka_tick(CONTRACTS[source], instance, cursor, kafka, postgres), dg.SensorResult
        ) and (requests := [r for r in tick.run_requests or [] if r.tags[BATCH_TAG] not in failed]):
            for request in requests:
                batch_id = request.tags[BATCH_TAG]
                try:
                    execute_job(
                        defs,
                        f"ingest_{source}_job",
                        instance,
                        run_config=dict(request.run_config),
                        tags={**request.tags, "metrify/trigger": "cli"},
                    )
                except RunFailedError as err:  # the other ranges go on; this one is re-requested later
                    failed[batch_id] = str(err)
                    continue
                batch_ids.append(batch_id)
                if on_batch:
                    on_batch(batch_id)
            cursor = tick.cursor
    seconds = time.monotonic() - started
    with postgres.connect() as conn:
        row = conn.execute(
            "SELECT count(*), coalesce(sum(records_in), 0), coalesce(sum(accepted), 0), "
            "coalesce(sum(quarantined), 0) FROM ops.ingest_ledger WHERE batch_id = ANY(%s)",
            (sorted(set(batch_ids)),),
        ).fetchone()
    batches, records, accepted, quarantined = row if row else (0, 0, 0, 0)
    return DrainSummary(int(batches), int(records), int(accepted), int(quarantined), seconds, failed)
