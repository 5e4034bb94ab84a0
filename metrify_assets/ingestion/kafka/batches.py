"""A Kafka run's batch: read exactly one offset range, then dead-letter its rejects and commit.

The run assigns and seeks (no group rebalancing, no subscription): the range is fixed by the sensor,
so a retry or replay reads the same records. Offsets become record versions (a re-sent reading later
in the partition replaces the earlier one); the first message's timestamp picks the lake day.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd
from kafka import KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata

from metrify_assets.contracts import SourceContract
from metrify_assets.ingestion.batch import BatchResult, BatchSpec
from metrify_assets.ingestion.kafka.ranges import OffsetRange
from metrify_assets.resources.kafka import KafkaResource, dlq_topic


class RangeReadError(RuntimeError):
    """The range could not be read completely in time (broker down, or offsets no longer there)."""


@dataclass(frozen=True)
class KafkaBatch:
    range: OffsetRange
    spec: BatchSpec
    messages: list[bytes]
    offsets: list[int]
    timestamps_ms: list[int]

    @property
    def received_at(self) -> pd.Timestamp:
        """When the batch had fully arrived: its newest message timestamp (timeliness is measured to it)."""
        return pd.Timestamp(max(self.timestamps_ms), unit="ms", tz="UTC")


def _read(
    consumer: KafkaConsumer, rng: OffsetRange, timeout_s: float
) -> tuple[list[bytes], list[int], list[int]]:
    tp = TopicPartition(rng.topic, rng.partition)
    consumer.assign([tp])
    consumer.seek(tp, rng.start)
    values: list[bytes] = []
    offsets: list[int] = []
    stamps: list[int] = []
    deadline = time.monotonic() + timeout_s
    while consumer.position(tp) < rng.end:
        if time.monotonic() > deadline:
            raise RangeReadError(
                f"{rng.batch_id}: read up to offset {consumer.position(tp)} of [{rng.start}, {rng.end}) "
                f"in {timeout_s:.0f}s"
            )
        for record in consumer.poll(timeout_ms=1000).get(tp, []):
            if rng.start <= record.offset < rng.end:  # a fetch may run past the range's end
                values.append(record.value)
                offsets.append(record.offset)
                stamps.append(record.timestamp)
    return values, offsets, stamps


def read_batch(
    kafka: KafkaResource, contract: SourceContract, rng: OffsetRange, timeout_s: float = 300.0
) -> KafkaBatch:
    """Exactly the records of `rng`, as bytes (decoding is the pipeline's job, not the consumer's)."""
    with kafka.consumer() as consumer:
        values, offsets, stamps = _read(consumer, rng, timeout_s)
    first = datetime.fromtimestamp(stamps[0] / 1000, tz=UTC) if stamps else datetime.now(tz=UTC)
    spec = BatchSpec(
        contract=contract, batch_id=rng.batch_id, origin="kafka", origin_ref=rng.batch_id, dt=first.date()
    )
    return KafkaBatch(rng, spec, values, offsets, stamps or [int(first.timestamp() * 1000)])


def dead_letter(kafka: KafkaResource, batch: KafkaBatch, result: BatchResult) -> int:
    """Send every quarantined record to `<topic>.dlq` with its reason and origin as headers.

    At least once: a replayed range sends its rejects again. The key names the source offset, so a
    DLQ consumer (or compaction) can drop repeats.
    """
    if not result.quarantined:  # the usual batch: no producer, no broker round trip
        return 0
    rng = batch.range
    with kafka.producer() as producer:
        for row in result.quarantined:
            offset = batch.offsets[result.decoded.message_index[row.record_index]]
            producer.send(
                dlq_topic(rng.topic),
                key=f"{rng.topic}-{rng.partition}-{offset}".encode(),
                value=row.payload.encode(),
                headers=[
                    ("reason", row.reasons.encode()),
                    ("source_topic", rng.topic.encode()),
                    ("partition", str(rng.partition).encode()),
                    ("offset", str(offset).encode()),
                    ("batch_id", rng.batch_id.encode()),
                ],
            )
    return len(result.quarantined)


def commit_range(kafka: KafkaResource, rng: OffsetRange) -> None:
    """Commit `end` (last offset + 1) for lag monitoring, never moving the group's offset backwards.

    The ledger, not this offset, is what makes ingestion exactly-once; a replay of an older range
    must not make the group look behind.
    """
    tp = TopicPartition(rng.topic, rng.partition)
    with kafka.consumer() as consumer:
        committed = consumer.committed(tp)
        if committed is None or committed < rng.end:
            consumer.commit({tp: OffsetAndMetadata(rng.end, rng.batch_id, -1)})
