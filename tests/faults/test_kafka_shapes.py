"""Every shape Kafka can deliver, from a foreign producer, on a real broker: processed or
quarantined and dead-lettered with a reason, and the offsets always advance.

Found by a new user: one tombstone (null value) made every run of its partition fail.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import dagster as dg
import psycopg
import pytest
from kafka import KafkaProducer, TopicPartition

from metrify_assets.ingestion.kafka.batches import DLQ_MAX_VALUE_BYTES
from metrify_assets.orchestration.drain import drain
from metrify_assets.resources import PostgresResource
from metrify_assets.resources.kafka import KafkaResource
from tests.faults.conftest import dead_letters

pytestmark = [pytest.mark.faults, pytest.mark.kafka, pytest.mark.postgres]
SOURCE = "weather_observations"


def observation(station: str, minute: int) -> bytes:
    return json.dumps(
        {"station_id": station, "observed_at": f"2026-03-29T10:{minute:02d}:00Z", "temperature_c": 9.5,
         "humidity_pct": 80, "pressure_hpa": 1012, "wind_speed_ms": 3.2, "precipitation_mm": 0}
    ).encode()  # fmt: skip


def test_null_empty_binary_huge_and_compressed_messages_never_block_the_partition(
    kafka_defs: dg.Definitions,
    kafka_resource: KafkaResource,
    pg_resource: PostgresResource,
    pg: psycopg.Connection,
    fault_log: Callable[[str, str, float, list[str]], None],
) -> None:
    kafka_resource.ensure_topics(partitions=1)
    topic = kafka_resource.topic(SOURCE)
    huge = b'{"station_id": "' + b"x" * 1_000_000 + b'"}'  # just under the broker's 1 MiB default
    hostile: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]] = [
        (None, b"W1", []),  # a tombstone
        (b"", None, []),  # no key: its letter has no source_key header
        (observation("W1", 0), None, []),  # null key: fine, processed
        (observation("W1", 1), b"W1", [("trace", b"\x00\x01"), ("content-type", b"application/json")]),
        (b"\x89PNG\r\n\x1a\n\x00\x00binary", b"\xffW1\x00", []),  # a binary key
        (huge, b"W1", []),
    ]
    for codec in (None, "gzip", "lz4", "snappy", "zstd"):
        producer = KafkaProducer(
            bootstrap_servers=kafka_resource.bootstrap_servers,
            compression_type=codec,
            max_request_size=1_100_000,
        )
        messages = hostile if codec is None else [(observation(f"C-{codec}", m), b"C", []) for m in range(3)]
        for value, key, headers in messages:
            producer.send(topic, value=value, key=key, headers=headers)
        producer.flush()
        producer.close()

    started = time.monotonic()
    summary = drain(kafka_defs, dg.DagsterInstance.ephemeral(), kafka_resource, pg_resource, sources=[SOURCE])
    took = time.monotonic() - started
    sent = len(hostile) + 4 * 3
    assert (summary.records, summary.accepted, summary.quarantined) == (sent, 2 + 12, 4)
    with kafka_resource.consumer() as consumer:
        assert consumer.committed(TopicPartition(topic, 0)) == sent  # the partition moved past all of it

    reasons = dict(pg.execute("SELECT record_index, reasons FROM ops.quarantine").fetchall())
    assert (reasons[0], reasons[1], reasons[5]) == (
        "malformed:null_value",
        "malformed:empty_message",
        "malformed:bad_text:station_id",  # a megabyte identifier
    )
    assert reasons[4].startswith("malformed:invalid_json")
    letters = dead_letters(kafka_resource, SOURCE)
    assert len(letters) == len(reasons)  # DLQ = quarantine
    by_offset = {int(h["offset"]): (v, h) for v, h in letters}
    assert by_offset[4][0] == hostile[4][0]  # binary junk dead-lettered verbatim
    # the producer's key, verbatim, so a letter can be routed back; absent when the message had none
    keys = {offset: h.get("source_key") for offset, (_, h) in by_offset.items()}
    assert keys == {0: b"W1", 1: None, 4: b"\xffW1\x00", 5: b"W1"}
    value, headers = by_offset[5]
    assert value is not None and len(value) == DLQ_MAX_VALUE_BYTES
    assert int(headers["truncated_from"]) == len(huge)
    assert headers["raw_key"].decode().startswith(f"raw/{SOURCE}/")
    payload = pg.execute("SELECT length(payload) FROM ops.quarantine WHERE record_index = 5").fetchone()
    assert payload == (len(huge),)  # the whole message is kept in quarantine
    fault_log(
        "foreign producer: tombstone, empty value, null key, headers, binary, 1 MB value; gzip/lz4/snappy/zstd",
        "decoded or quarantined with a reason and dead-lettered; the partition's offset moved past all of it",
        took,
        ["ledger in = accepted + quarantined", "DLQ = quarantine", "offset committed", "no run failed"],
    )
