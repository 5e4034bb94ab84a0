"""A Kafka run's batch: read exactly one offset range, then dead-letter its rejects and commit.

The run assigns and seeks (no group rebalancing, no subscription): the range is fixed by the sensor,
so a retry or replay reads the same records. Offsets become record versions (a re-sent reading later
in the partition replaces the earlier one); the first message's timestamp picks the lake day.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd
import psycopg
from kafka import KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata

from metrify_assets.contracts import SourceContract
from metrify_assets.ingestion.batch import BatchResult, BatchSpec
from metrify_assets.ingestion.kafka.expired import Expired
from metrify_assets.ingestion.kafka.ranges import OffsetRange
from metrify_assets.ingestion.kafka.records import read_in_chunks
from metrify_assets.resources.kafka import KafkaResource, dlq_topic

# Below the producer's and broker's 1 MiB defaults, leaving room for the key and headers.
DLQ_MAX_VALUE_BYTES = 512 * 1024


class RangeReadError(TimeoutError):
    """The range could not be read completely in time (broker down, or offsets no longer there)."""


@dataclass(frozen=True)
class KafkaBatch:
    range: OffsetRange
    spec: BatchSpec
    messages: list[bytes | None]  # None: a null value (tombstone)
    offsets: list[int]
    keys: list[bytes | None]  # per message: the producer's key (None: the message had none)
    timestamps_ms: list[int]
    backfill: list[bool]  # per message: declared history by the `metrify-backfill` header
    expired: Expired | None = None  # offsets of the range retention deleted before the run read it

    @property
    def received_at(self) -> pd.Timestamp:
        """When the batch had fully arrived: its newest message timestamp (timeliness is measured to it)."""
        return pd.Timestamp(max(self.timestamps_ms), unit="ms", tz="UTC")


def _read(
    consumer: KafkaConsumer, rng: OffsetRange, timeout_s: float
) -> tuple[list[bytes | None], list[int], list[bytes | None], list[int], list[bool], Expired | None]:
    """The range's records, and its offsets that retention deleted before the run (reading starts
    at the first offset the broker holds)."""
    tp = TopicPartition(rng.topic, rng.partition)
    consumer.assign([tp])
    read_in_chunks(consumer, rng.start, rng.end)  # a fetch may run past the range's end
    first_held = consumer.beginning_offsets([tp])[tp]
    expired = (
        Expired(rng.topic, rng.partition, rng.start, min(first_held, rng.end))
        if first_held > rng.start
        else None
    )
    consumer.seek(tp, max(rng.start, first_held))
    values: list[bytes | None] = []
    offsets: list[int] = []
    keys: list[bytes | None] = []
    stamps: list[int] = []
    backfill: list[bool] = []
    deadline = time.monotonic() + timeout_s
    while consumer.position(tp) < rng.end:
        if time.monotonic() > deadline:
            raise RangeReadError(
                f"{rng.batch_id}: read up to offset {consumer.position(tp)} of [{rng.start}, {rng.end}) "
                f"in {timeout_s:.0f}s"
            )
        for chunk in consumer.poll(timeout_ms=1000).get(tp, []):  # offsets in the range only
            values += chunk.values
            offsets += chunk.offsets
            keys += chunk.keys
            stamps += chunk.timestamps_ms
            backfill += chunk.backfill
    return values, offsets, keys, stamps, backfill, expired


def read_batch(
    kafka: KafkaResource, contract: SourceContract, rng: OffsetRange, timeout_s: float = 300.0
) -> KafkaBatch:
    """Exactly the records of `rng`, as bytes (decoding is the pipeline's job, not the consumer's)."""
    with kafka.consumer() as consumer:
        values, offsets, keys, stamps, backfill, expired = _read(consumer, rng, timeout_s)
    first = datetime.fromtimestamp(stamps[0] / 1000, tz=UTC) if stamps else datetime.now(tz=UTC)
    spec = BatchSpec(
        contract=contract, batch_id=rng.batch_id, origin="kafka", origin_ref=rng.batch_id, dt=first.date()
    )
    return KafkaBatch(
        rng, spec, values, offsets, keys, stamps or [int(first.timestamp() * 1000)], backfill, expired
    )


def dead_letter_value(
    batch: KafkaBatch, result: BatchResult, record_index: int, per_message: Counter[int]
) -> tuple[bytes, int]:
    """What the DLQ carries for a record: its message's bytes verbatim when the message held only it
    (binary junk stays binary), else the record's JSON; cut to `DLQ_MAX_VALUE_BYTES` so a message
    near the broker's size limit still fits with its headers. Returns the value and the full length.
    `per_message` counts the records of each message.
    """
    position = result.decoded.message_index[record_index]
    alone = per_message[position] == 1
    message = batch.messages[position] if alone else None
    value = (message or b"") if alone else result.decoded.payloads[record_index].encode()
    return value[:DLQ_MAX_VALUE_BYTES], len(value)


def dead_letter(kafka: KafkaResource, batch: KafkaBatch, result: BatchResult) -> int:
    """Send every quarantined record to `<topic>.dlq` with its reason and origin as headers.

    At least once: a replayed range sends its rejects again. The key names the source offset and
    the record's index in the batch (a message may hold several records), so a DLQ consumer (or
    compaction) can drop repeats. The producer's key travels in the `source_key` header (bytes
    verbatim; absent when the message had no key), so a consumer can route a letter back to the
    meter, node or station it came from. A cut value says so (`truncated_from` header);
    the whole message is in the raw batch (`raw_key`) and in ops.quarantine.
    """
    if not result.quarantined:  # the usual batch: no producer, no broker round trip
        return 0
    rng = batch.range
    per_message = Counter(result.decoded.message_index)
    with kafka.producer() as producer:
        sent = []
        for row in result.quarantined:
            position = result.decoded.message_index[row.record_index]
            offset = batch.offsets[position]
            value, length = dead_letter_value(batch, result, row.record_index, per_message)
            headers = [
                ("reason", row.reasons.encode()),
                ("source_topic", rng.topic.encode()),
                ("partition", str(rng.partition).encode()),
                ("offset", str(offset).encode()),
                ("batch_id", rng.batch_id.encode()),
                ("record_index", str(row.record_index).encode()),
                ("raw_key", batch.spec.raw_key.encode()),
            ]
            source_key = batch.keys[position]
            if source_key is not None:
                headers.append(("source_key", source_key))
            if length > len(value):
                headers.append(("truncated_from", str(length).encode()))
            sent.append(
                producer.send(
                    dlq_topic(rng.topic),
                    key=f"{rng.topic}-{rng.partition}-{offset}-{row.record_index}".encode(),
                    value=value,
                    headers=headers,
                )
            )
        producer.flush()
        for future in sent:  # a letter the broker refused fails the run (retried), not lost unseen
            future.get(timeout=0)
    return len(result.quarantined)


def lock_partition(conn: psycopg.Connection, rng: OffsetRange) -> None:
    """Hold the offset-commit lock of `rng`'s topic-partition until `conn`'s transaction ends."""
    conn.execute(
        "SELECT pg_advisory_xact_lock(hashtext('kafka_commit:' || %s), %s)", (rng.topic, rng.partition)
    )


def commit_range(kafka: KafkaResource, rng: OffsetRange, conn: psycopg.Connection) -> None:
    """Commit `end` (last offset + 1) for lag monitoring, never moving the group's offset backwards.

    The ledger, not this offset, is what makes ingestion exactly-once; but a drain starts from it,
    so a replay of an older range must not make the group look behind. Runs of one partition can
    end side by side (a drain's cut range, the daemon's queued runs), and Kafka has no compare-and-set
    for offsets: a PostgreSQL advisory lock on the partition, held until `conn`'s transaction ends,
    makes the read and the commit one step among them.
    """
    lock_partition(conn, rng)
    tp = TopicPartition(rng.topic, rng.partition)
    with kafka.offsets_consumer() as consumer:
        committed = consumer.committed(tp)
        if committed is None or committed < rng.end:
            consumer.commit({tp: OffsetAndMetadata(rng.end, rng.batch_id, -1)})
