"""The native record parse (metrify_native via ingestion/kafka/records.py) against kafka-python's own.

kafka-python builds the batches (its producer's builder) and parses them back record by record; the
range read must keep exactly what that gives, whatever the compression, nulls, headers or bounds,
and a malformed batch must raise kafka-python's CorruptRecordError, never crash or read past its end.
The fetch around it (aborted transactions, control batches, retention) runs against a real broker
in tests/ingestion/kafka.
"""

from __future__ import annotations

import random

import pytest
from kafka import TopicPartition
from kafka.errors import CorruptRecordError
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder
from kafka.record.legacy_records import LegacyRecordBatchBuilder
from kafka.record.memory_records import MemoryRecords
from metrify_native import parse_records

from metrify_assets.ingestion.kafka.produce import BACKFILL_HEADER
from metrify_assets.ingestion.kafka.records import RangeRecords, RecordChunk, parse_batch

BASE_MS = 1_780_000_000_000


def build(records: int, compression: int = DefaultRecordBatch.CODEC_NONE, base_offset: int = 0) -> bytes:
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=compression,
        is_transactional=False,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=1 << 30,
    )
    for i in range(records):
        headers: list[tuple[str, bytes | None]] = [
            [],
            [(BACKFILL_HEADER, b"1")],
            [(BACKFILL_HEADER, b"0"), ("trace", None)],
            [("trace", b"\x00\xff"), (BACKFILL_HEADER, b"1")],
            [(BACKFILL_HEADER, None)],
        ][i % 5]
        builder.append(
            i,
            timestamp=BASE_MS + 7 * i,
            key=None if i % 3 == 0 else f"meter-{i}".encode(),
            value=None
            if i % 11 == 0
            else b'{"meter_id": "m%d", "value_kwh": %d.5}' % (i, i) + b"x" * (i % 200),
            headers=headers,
        )
    buffer = builder.build()
    buffer[:8] = base_offset.to_bytes(8, "big", signed=True)
    return bytes(buffer)


def by_kafka_python(buffer: bytes, start: int, end: int) -> RecordChunk:
    chunk = RecordChunk()
    for record in DefaultRecordBatch(buffer):
        if start <= record.offset < end:
            chunk.values.append(record.value)
            chunk.offsets.append(record.offset)
            chunk.keys.append(record.key)
            chunk.timestamps_ms.append(record.timestamp)
            chunk.backfill.append((BACKFILL_HEADER, b"1") in record.headers)
    return chunk


@pytest.mark.parametrize(
    "compression", [DefaultRecordBatch.CODEC_NONE, DefaultRecordBatch.CODEC_GZIP], ids=["plain", "gzip"]
)
@pytest.mark.parametrize(
    "bounds", [(0, 1 << 62), (1_000_100, 1_000_900), (0, 1_000_000), (1_001_000, 1 << 62)]
)
def test_a_batch_parses_as_kafka_python_parses_it(compression: int, bounds: tuple[int, int]) -> None:
    buffer = build(1000, compression, base_offset=1_000_000)
    parsed = parse_batch(DefaultRecordBatch(buffer), *bounds)
    assert parsed == by_kafka_python(buffer, *bounds)
    assert len(parsed.offsets) == max(0, min(bounds[1], 1_001_000) - max(bounds[0], 1_000_000))


def test_a_full_batch_keeps_nulls_and_flags() -> None:
    parsed = parse_batch(DefaultRecordBatch(build(30)), 0, 30)
    assert parsed.offsets == list(range(30))
    assert parsed.values[0] is None and parsed.values[11] is None and parsed.values[1] is not None
    assert parsed.keys[3] is None and parsed.keys[4] == b"meter-4"
    assert parsed.timestamps_ms[29] == BASE_MS + 7 * 29
    # b"1" only, wherever it stands among the headers; b"0" and a null value are not a backfill
    assert parsed.backfill[:5] == [False, True, False, True, False]


def test_a_log_append_time_batch_stamps_every_record_with_the_brokers_time() -> None:
    buffer = bytearray(build(20))
    buffer[22] |= DefaultRecordBatch.TIMESTAMP_TYPE_MASK  # the broker's time (attributes' low byte)
    parsed = parse_batch(DefaultRecordBatch(bytes(buffer)), 0, 20)
    assert parsed == by_kafka_python(bytes(buffer), 0, 20)
    assert set(parsed.timestamps_ms) == {BASE_MS + 7 * 19}


def test_malformed_batches_raise_corrupt_record_error_and_never_crash() -> None:
    """Truncations, flipped bytes and lengths pointing past the end, at every place of the records."""
    rng = random.Random(17)
    buffer = build(40)
    header = DefaultRecordBatch.HEADER_STRUCT.size
    errors = parsed = 0
    for trial in range(3000):
        mutated = bytearray(buffer)
        if trial % 3 == 0:
            mutated = mutated[: rng.randrange(header, len(buffer))]
        else:
            for _ in range(rng.randint(1, 4)):
                mutated[rng.randrange(header, len(buffer))] = rng.randrange(256)
        try:
            chunk = parse_batch(DefaultRecordBatch(bytes(mutated)), 0, 1 << 62)
        except CorruptRecordError as err:
            assert "record batch at offset 0" in str(err)
            errors += 1
        else:
            assert len(chunk.values) == len(chunk.offsets) == len(chunk.keys) == len(chunk.backfill)
            parsed += 1
    assert errors > 1000  # most damage is found; what parses is a consistent set of records
    assert parsed > 0


def test_a_gzip_section_that_does_not_inflate_is_a_corrupt_batch() -> None:
    """Gzip is inflated by ISA-L, not kafka-python: cut or damaged, the section is a corrupt batch (the
    CRC, which the fetcher checks, would not catch a producer that compressed it wrong)."""
    buffer = build(40, DefaultRecordBatch.CODEC_GZIP)
    header = DefaultRecordBatch.HEADER_STRUCT.size
    damaged = bytearray(buffer)
    damaged[header + 12 : header + 40] = bytes(28)  # inside the deflate stream
    for bad in (buffer[: len(buffer) - 9], bytes(damaged), buffer[:header] + b"not gzip at all"):
        with pytest.raises(CorruptRecordError, match="record batch at offset 0: gzip"):
            parse_batch(DefaultRecordBatch(bad), 0, 1 << 62)


def test_a_range_keeps_its_own_offsets_when_the_fetch_starts_below_it() -> None:
    """An offset reset (the log truncated under the range) fetches from an earlier offset: those
    records belong to earlier ranges, and the range read keeps [start, end) only."""
    buffer = build(30, base_offset=100) + build(30, base_offset=130)
    part = RangeRecords(100, TopicPartition("t", 0), MemoryRecords(buffer), start=110, end=140)
    chunks = part.take()
    assert [c.offsets for c in chunks] == [list(range(110, 130)), list(range(130, 140))]
    assert part.next_fetch_offset == 160  # past the last batch read, as kafka-python moves it


def test_a_delta_past_the_64_bit_offsets_is_a_corrupt_batch() -> None:
    """The record's offset delta is its own bytes; added to a base offset near the top it would wrap
    (kafka-python's Python ints would not)."""
    with pytest.raises(CorruptRecordError, match="offset or timestamp delta out of range"):
        parse_batch(DefaultRecordBatch(build(30, base_offset=2**63 - 10)), 0, 1 << 62)


def zigzag(value: int) -> bytes:
    number, out = (value << 1) ^ (value >> 63), bytearray()
    number &= (1 << 64) - 1
    while number >= 0x80:
        out.append(number & 0x7F | 0x80)
        number >>= 7
    return bytes(out + bytes([number]))


def test_any_negative_length_is_null_as_kafkas_own_clients_read_it() -> None:
    """Kafka's Java client and kafka-python read a key or value length below -1 as null; the broker
    stores such a record, so refusing it would hold its range for good."""
    body = (
        b"\x00" + zigzag(5) + zigzag(0) + zigzag(-2) + zigzag(-7) + zigzag(1) + zigzag(1) + b"h" + zigzag(-3)
    )
    record = zigzag(len(body)) + body
    lists: tuple[list, list, list, list, list] = ([], [], [], [], [])
    kept = parse_records(record, 1, 40, BASE_MS, False, BASE_MS, 0, 100, BACKFILL_HEADER.encode(), *lists)
    assert kept == 1
    assert lists == ([None], [40], [None], [BASE_MS + 5], [False])
    null_header_key = (
        b"\x00" + zigzag(0) + zigzag(0) + zigzag(-1) + zigzag(-1) + zigzag(1) + zigzag(-1) + zigzag(-1)
    )
    with pytest.raises(ValueError, match="header"):
        parse_records(
            zigzag(len(null_header_key)) + null_header_key, 1, 0, 0, False, 0, 0, 1, b"x", [], [], [], [], []
        )


def test_format_v1_batches_are_read_by_kafka_pythons_own_parse() -> None:
    """Segments written before Kafka 4 may still hold format v0/v1 batches (one message each when
    uncompressed)."""
    builder = LegacyRecordBatchBuilder(magic=1, compression_type=0, batch_size=1 << 20)
    for i in range(10):
        builder.append(i, timestamp=BASE_MS + i, key=None if i % 2 else b"k", value=b"v%d" % i)
    part = RangeRecords(0, TopicPartition("t", 0), MemoryRecords(bytes(builder.build())), start=3, end=8)
    chunks = part.take()
    assert [c.offsets for c in chunks] == [[i] for i in range(3, 8)]
    assert [c.values[0] for c in chunks] == [b"v%d" % i for i in range(3, 8)]
    assert [c.keys[0] for c in chunks] == [None, b"k", None, b"k", None]
    assert [c.timestamps_ms[0] for c in chunks] == [BASE_MS + i for i in range(3, 8)]
    assert not any(c.backfill[0] for c in chunks)
    assert part.next_fetch_offset == 10
