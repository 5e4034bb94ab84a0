"""A range read's records, parsed a record batch at a time in native code.

kafka-python fetches (leaders, fetch sessions, retries, offsets, read_committed's aborted
transactions); what it does per record (a Python varint parser and two objects a record) was the
largest single cost of an ingest run. A range's consumer swaps in `RangeRecords` as its fetcher's
parsed-fetch class: it keeps kafka-python's batch-level handling as it is (CRC, aborted and control
batches, the next fetch offset) and hands each batch's records to `metrify_native.parse_records`,
which appends the five columns a range read keeps. `poll` then returns one `RecordChunk` per batch
instead of a record each. Both hooks are private to kafka-python (pinned below 3.1 in pyproject.toml);
tests/ingestion/test_kafka_records.py compares the parse with kafka-python's own.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, cast

from isal import igzip
from isal.igzip_lib import IsalError
from kafka import KafkaConsumer
from kafka.consumer.fetcher import Fetcher
from kafka.errors import CorruptRecordError
from kafka.protocol.consumer import IsolationLevel
from kafka.record.default_records import DefaultRecordBatch
from kafka.record.legacy_records import LegacyRecordBatch
from kafka.record.memory_records import MemoryRecords
from metrify_native import parse_records

from metrify_assets.ingestion.kafka.produce import BACKFILL_HEADER

_BACKFILL_KEY = BACKFILL_HEADER.encode()  # the header's key as the records hold it


@dataclass
class RecordChunk:
    """The kept records of one record batch, as columns."""

    values: list[bytes | None] = field(default_factory=list)  # None: a null value (tombstone)
    offsets: list[int] = field(default_factory=list)
    keys: list[bytes | None] = field(default_factory=list)
    timestamps_ms: list[int] = field(default_factory=list)
    backfill: list[bool] = field(default_factory=list)  # the `metrify-backfill` header is b"1"


def parse_batch(batch: DefaultRecordBatch, start: int, end: int) -> RecordChunk:
    """The records of a format v2 batch with offsets in [start, end), parsed in C. Raises
    CorruptRecordError."""
    chunk = RecordChunk()
    try:
        parse_records(
            _records_section(batch),
            batch.records_count,
            batch.base_offset,
            batch.first_timestamp,
            batch.timestamp_type == DefaultRecordBatch.LOG_APPEND_TIME,
            batch.max_timestamp,
            start,
            end,
            _BACKFILL_KEY,
            chunk.values,
            chunk.offsets,
            chunk.keys,
            chunk.timestamps_ms,
            chunk.backfill,
        )
    except ValueError as err:
        raise CorruptRecordError(f"record batch at offset {batch.base_offset}: {err}") from err
    return chunk


# What inflating a damaged gzip section raises (BadGzipFile is an OSError; isal's stubs type its own
# error as an instance, hence the cast).
_INFLATE_ERRORS: tuple[type[BaseException], ...] = (OSError, EOFError, cast("type[BaseException]", IsalError))


def _records_section(batch: DefaultRecordBatch) -> memoryview:
    """The batch's records, uncompressed: gzip by ISA-L, in one call (kafka-python reads it through
    `gzip.GzipFile`, a loop in Python: 4 % of an ingest run's CPU), other codecs by kafka-python.
    Raises CorruptRecordError for a compressed section that does not inflate."""
    if batch.compression_type == DefaultRecordBatch.CODEC_GZIP:
        try:
            return memoryview(igzip.decompress(memoryview(batch._buffer)[batch._pos :]))
        except _INFLATE_ERRORS as err:
            raise CorruptRecordError(f"record batch at offset {batch.base_offset}: gzip: {err}") from err
    batch._maybe_uncompress()  # snappy, lz4, zstd
    return memoryview(batch._buffer)[batch._pos :]


def parse_legacy_batch(batch: LegacyRecordBatch, start: int, end: int) -> tuple[RecordChunk, int | None]:
    """The records of a format v0/v1 batch (written before Kafka 4, still in a log's old segments)
    with offsets in [start, end), by kafka-python's own parse; and its last offset (None: empty).
    These formats have no headers, so no record is a declared backfill."""
    chunk, last = RecordChunk(), None
    for record in batch:
        last = record.offset
        if start <= record.offset < end:
            chunk.values.append(record.value)
            chunk.offsets.append(record.offset)
            chunk.keys.append(record.key)
            chunk.timestamps_ms.append(-1 if record.timestamp is None else record.timestamp)  # v0: none
            chunk.backfill.append(False)
    return chunk, last


class RangeRecords(Fetcher.PartitionRecords):
    """A fetch response's records for the range [start, end), as one `RecordChunk` per batch."""

    def __init__(self, *args: Any, start: int, end: int, **kwargs: Any) -> None:
        self._start, self._end = start, end
        super().__init__(*args, **kwargs)

    def _maybe_skip_record(self, record: RecordChunk) -> bool:
        return False  # a chunk holds no offset below the fetch offset

    def _unpack_records(self, tp: Any, records: MemoryRecords, *_deserializers: Any) -> Iterator[RecordChunk]:
        # kafka-python's own loop (fetcher.PartitionRecords._unpack_records), a batch at a time. The
        # lower bound is the range's start too: an offset reset (the log truncated under the range)
        # moves the fetch below it, and those records belong to earlier ranges.
        lower = max(self.fetch_offset, self._start)
        batch = records.next_batch()
        while batch is not None:
            if self.check_crcs and not batch.validate_crc():
                raise CorruptRecordError(
                    f"Record batch for partition {tp} at offset {batch.base_offset} failed crc check"
                )
            if batch.magic < 2:
                chunk, last = parse_legacy_batch(batch, lower, self._end)
                if last is not None:
                    self.next_fetch_offset = last + 1
            else:
                self.leader_epoch = batch.leader_epoch
                skip = batch.is_control_batch
                if self.isolation_level == IsolationLevel.READ_COMMITTED and batch.has_producer_id():
                    self._consume_aborted_transactions_up_to(batch.last_offset)
                    if self._contains_abort_marker(batch):
                        self.aborted_producer_ids.discard(batch.producer_id)
                    elif self._is_batch_aborted(batch):
                        skip = True
                chunk = RecordChunk() if skip else parse_batch(batch, lower, self._end)
                self.next_fetch_offset = batch.next_offset
            self.records_read += len(chunk.offsets)
            self.bytes_read += batch.size_in_bytes
            if chunk.offsets:
                yield chunk
            batch = records.next_batch()
        self.drain()


def read_in_chunks(consumer: KafkaConsumer, start: int, end: int) -> None:
    """Make `consumer`'s polls return `RecordChunk`s of the offsets in [start, end)."""
    consumer._fetcher.PartitionRecords = functools.partial(RangeRecords, start=start, end=end)
