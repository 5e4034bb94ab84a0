"""Kafka sensors: one run per topic-partition offset range, and no holes left by failed runs.

A tick reads only beginning/end offsets and plans ranges (`kafka.ranges`); runs read their range.
The cursor (next start offset per partition) moves when runs are requested, so each tick also
reconciles: a range below the cursor that the ledger does not hold and whose runs all failed is
requested again (`-retry-<n>`) once its `retry_delay` has passed, as the landing sensors do.
Unreachable brokers skip the tick with the cursor unchanged. Offsets retention deleted before a tick
planned them are a `kafka_expired` alert (`kafka.expired`); a partition whose log restarted below the
cursor is not read, and a `kafka_restarted` alert (`kafka.restarted`).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import dagster as dg
from kafka.errors import KafkaError

from metrify_assets.contracts import SourceContract
from metrify_assets.ingestion.kafka.expired import expired_below, report_expired
from metrify_assets.ingestion.kafka.ranges import (
    OffsetRange,
    balance_ranges,
    dump_cursor,
    load_cursor,
    plan_ranges,
)
from metrify_assets.ingestion.kafka.restarted import report_restarted, restarted_below
from metrify_assets.ingestion.sensors import BATCH_TAG, due_retries, failed_batches, waiting_text
from metrify_assets.resources import PostgresResource
from metrify_assets.resources.kafka import KafkaResource
from metrify_assets.resources.kafka_offsets import consumer_lag, topic_offsets
from metrify_assets.storage.writes import delivered_batch_ids

log = logging.getLogger(__name__)
TOPIC_TAG = "metrify/kafka_topic"
_ENDED_BADLY = [dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]


def range_request(source: str, rng: OffsetRange, run_key: str) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=run_key,
        run_config=rng.run_config(source),
        tags={BATCH_TAG: rng.batch_id, TOPIC_TAG: rng.topic, "metrify/source": source},
    )


def _retries(
    instance: dg.DagsterInstance, postgres: PostgresResource, source: str, topic: str, now: datetime | None
) -> tuple[list[tuple[OffsetRange, str]], str]:
    """Ranges of `topic` not delivered (in the ledger, dead letters sent, offset committed) whose
    runs all ended without success and whose `retry_delay` has passed at `now` (all of them when
    `now` is None), with their run keys; and the skip reason's account of those still waiting. A run
    that failed after its commit is requested again too."""
    runs = instance.get_runs(filters=dg.RunsFilter(tags={TOPIC_TAG: topic}, statuses=_ENDED_BADLY))
    candidates = {r.tags[BATCH_TAG] for r in runs if BATCH_TAG in r.tags}
    if not candidates:
        return [], ""
    with postgres.connect() as conn:
        done = delivered_batch_ids(conn, source)
    failed = failed_batches(instance, sorted(candidates - done))
    due, waiting = due_retries(failed, now)
    return [(OffsetRange.parse(b), f"{b}-retry-{n}") for b, n in due.items()], waiting_text(waiting)


def unreachable(kafka: KafkaResource, err: KafkaError) -> str:
    detail = str(err) if str(err).startswith(type(err).__name__) else f"{type(err).__name__}: {err}"
    return f"Kafka at {kafka.bootstrap_servers} is unreachable ({detail})"


def kafka_tick(
    contract: SourceContract,
    instance: dg.DagsterInstance,
    cursor: str | None,
    kafka: KafkaResource,
    postgres: PostgresResource,
    now: datetime | None,
    workers: int = 1,
    from_committed: bool = False,
) -> dg.SensorResult | dg.SkipReason:
    """One sensor evaluation on configured Kafka; raises KafkaError when the brokers cannot be
    reached (the sensor skips the tick, the drain reports it). `metrify kafka drain` calls it too, so
    both plan identically, except that the drain, which knows how many runs it executes at once
    (`workers`), has the last tick of its backlog balanced over them (`balance_ranges`: a tick capped
    before the end offsets is not, as the next tick's ranges keep the workers busy). The daemon's
    sensor plans one range per partition and step: its runs start as the run queue frees up,
    whatever a tick held. The sensor passes the time, so failed ranges wait out their `retry_delay`;
    the drain passes None: a person's command requests every failed range again at once. Without a
    cursor, a tick starts at each partition's beginning, or with `from_committed` (the drain's first
    tick) at the ingest group's committed offsets, read with the others.

    Every tick that reaches the brokers also reports the consumer lag (see `lag_observation`).
    """
    source = contract.source
    topic = kafka.topic(source)
    beginning, end, committed = topic_offsets(kafka, topic)
    if not end:
        return dg.SkipReason(f"Topic {topic} does not exist (yet).")
    previous = committed if cursor is None and from_committed else load_cursor(cursor)
    expired = expired_below(topic, beginning, previous, committed)
    restarted = restarted_below(topic, end, previous)  # plan_ranges plans nothing below the cursor
    if expired or restarted:  # before the cursor moves past them: a tick that fails here reports again
        with postgres.connect() as conn:
            report_expired(conn, expired)
            report_restarted(conn, restarted)
        for alert in [e.alert for e in expired] + [r.alert for r in restarted]:
            log.error(alert.summary)
    planned, next_offsets = plan_ranges(topic, beginning, end, previous)
    if all(next_offsets[p] >= end[p] for p in end):  # the backlog ends with this tick
        planned = balance_ranges(planned, workers)
    requests = [range_request(source, rng, rng.batch_id) for rng in planned]
    retries, waiting = _retries(instance, postgres, source, topic, now)
    requests += [range_request(source, rng, key) for rng, key in retries]
    lag = lag_observation(contract, kafka, consumer_lag(beginning, end, committed), end)
    if not requests:
        held = (
            f"; partitions {', '.join(str(r.partition) for r in restarted)} restarted, not read"
            if restarted
            else ""
        )
        skip = dg.SkipReason(f"No new records in {topic} (end offsets {dump_cursor(end)}{held}){waiting}.")
        moved = dump_cursor(next_offsets) if expired else None  # past the lost offsets, reported once
        return dg.SensorResult(skip_reason=skip, asset_events=[lag], cursor=moved)
    return dg.SensorResult(run_requests=requests, cursor=dump_cursor(next_offsets), asset_events=[lag])


def lag_observation(
    contract: SourceContract, kafka: KafkaResource, lag: dict[int, int], end: dict[int, int]
) -> dg.AssetObservation:
    """The ingest group's lag on the topic as an observation of `raw_<source>`: a history in the UI."""
    return dg.AssetObservation(
        asset_key=f"raw_{contract.source}",
        metadata={
            "consumer_lag": dg.MetadataValue.int(sum(lag.values())),
            "lag_by_partition": dg.MetadataValue.json({str(p): n for p, n in lag.items()}),
            "end_offsets": dg.MetadataValue.json({str(p): n for p, n in end.items()}),
            "topic": dg.MetadataValue.text(kafka.topic(contract.source)),
            "consumer_group": dg.MetadataValue.text(kafka.group_id),
        },
    )


def build_kafka_sensor(
    contract: SourceContract,
    job: dg.UnresolvedAssetJobDefinition,
    minimum_interval_seconds: int = 30,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED,
) -> dg.SensorDefinition:
    @dg.sensor(
        name=f"kafka_{contract.source}_sensor",
        job=job,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description=f"Requests one ingest run per new offset range of the {contract.source} topic.",
    )
    def _sensor(
        context: dg.SensorEvaluationContext, kafka: KafkaResource, postgres: PostgresResource
    ) -> dg.SensorResult | dg.SkipReason:
        if not kafka.configured:
            return dg.SkipReason("Kafka is not configured (KAFKA_BOOTSTRAP_SERVERS is unset).")
        try:
            return kafka_tick(contract, context.instance, context.cursor, kafka, postgres, datetime.now(UTC))
        except KafkaError as err:
            return dg.SkipReason(f"{unreachable(kafka, err)}; cursor unchanged, the next tick tries again.")

    return _sensor
