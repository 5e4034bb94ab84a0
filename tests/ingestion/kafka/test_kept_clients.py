"""Kafka clients a drain's process keeps from run to run (`resources.kafka_kept`), on the real broker:
offsets and commits are the broker's, letters are all sent or the call fails, a consumer that reads
records is never kept, a client whose use failed is not handed out again, and a forked process never
uses its parent's."""

from __future__ import annotations

import gc
import multiprocessing
import os
from pathlib import Path

import orjson
import pandas as pd
import psycopg
import pytest
from kafka import TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from metrify_assets.contracts import CONTRACTS
from metrify_assets.ingestion.batch import process_batch
from metrify_assets.ingestion.kafka.batches import commit_range, dead_letter, read_batch
from metrify_assets.ingestion.kafka.produce import produce
from metrify_assets.ingestion.kafka.ranges import OffsetRange
from metrify_assets.resources import LakeResource, kafka_kept
from metrify_assets.resources.kafka import KafkaResource, dlq_topic
from metrify_assets.resources.kafka_offsets import topic_offsets
from metrify_platform.kafka_broker import free_port
from tests.ingestion.kafka.test_ingest_cli import read_topic

SOURCE = "weather_observations"
CONTRACT = CONTRACTS[SOURCE]


def observations(n: int) -> list[str]:
    return [
        orjson.dumps({"station_id": f"ST-{i % 7}", "observed_at": f"2026-03-01T{i % 24:02d}:00:00Z"}).decode()
        for i in range(n)
    ]


def ranges(kafka: KafkaResource) -> list[OffsetRange]:
    topic = kafka.topic(SOURCE)
    beginning, end, _ = topic_offsets(kafka, topic)
    return [OffsetRange(topic, p, beginning[p], end[p]) for p in sorted(end) if end[p] > beginning[p]]


@pytest.mark.kafka
def test_a_kept_offsets_consumer_reads_the_brokers_offsets_each_time_and_commits(
    kafka_resource: KafkaResource, pg: psycopg.Connection
) -> None:
    kafka_resource.ensure_topics(partitions=3)
    produce(kafka_resource, {SOURCE: observations(60)})
    planned = ranges(kafka_resource)
    with kafka_kept.keeping():
        with kafka_resource.offsets_consumer() as first:
            pass
        assert topic_offsets(kafka_resource, planned[0].topic).committed == {}
        commit_range(kafka_resource, planned[0], pg)
        pg.commit()
        # A commit by another client (a fresh one, as another process's) is read, not a cached value.
        with kafka_resource.consumer() as other:
            tp = TopicPartition(planned[1].topic, planned[1].partition)
            other.commit({tp: OffsetAndMetadata(planned[1].end, "", -1)})
        committed = topic_offsets(kafka_resource, planned[0].topic).committed
        with kafka_resource.offsets_consumer() as last:
            assert last is first, "the same consumer, use after use"
    assert first._closed, "closed when the keeping ends"
    assert committed == {planned[0].partition: planned[0].end, planned[1].partition: planned[1].end}


@pytest.mark.kafka
def test_the_next_range_of_a_partition_is_read_whole_after_one_that_filled_a_poll(
    kafka_resource: KafkaResource,
) -> None:
    # 5,100 record batches of one record each (one flush per message): the first range's last poll
    # takes exactly the 5,000 records a poll holds, and its fetch holds more after them. A consumer
    # kept from that read resumed the parsed batch with the first range's bounds: 0 of the 100.
    kafka_resource.ensure_topics(partitions=1)
    topic = kafka_resource.topic(SOURCE)
    with kafka_resource.producer() as producer:
        for value in observations(5_100):
            producer.send(topic, value=value.encode())
            producer.flush()
    first, second = OffsetRange(topic, 0, 0, 5_000), OffsetRange(topic, 0, 5_000, 5_100)
    with kafka_kept.keeping():
        batches = [read_batch(kafka_resource, CONTRACT, rng) for rng in (first, second)]
        with kafka_resource.consumer() as one, kafka_resource.consumer() as two:
            assert one is not two, "a consumer that reads records is never kept"
    assert [len(b.messages) for b in batches] == [5_000, 100]
    assert batches[1].offsets == list(range(5_000, 5_100))


@pytest.mark.kafka
def test_a_kept_producer_sends_every_message_of_every_use(kafka_resource: KafkaResource) -> None:
    kafka_resource.ensure_topics(partitions=1)
    topic = kafka_resource.topic(SOURCE)
    producers = []
    with kafka_kept.keeping():
        for use in range(3):
            with kafka_resource.producer() as producer:
                for i in range(5):
                    producer.send(topic, key=b"k", value=f"{use}-{i}".encode())
                producers.append(producer)
    assert producers[0] is producers[1] is producers[2]
    assert producers[0]._closed
    assert [r.value for r in read_topic(kafka_resource, topic)] == [
        f"{use}-{i}".encode() for use in range(3) for i in range(5)
    ]


@pytest.mark.kafka
def test_a_client_whose_use_raised_is_closed_and_never_handed_out_again(
    kafka_resource: KafkaResource,
) -> None:
    with kafka_kept.keeping():
        with pytest.raises(ValueError), kafka_resource.offsets_consumer() as broken:
            raise ValueError("the run failed mid-commit")
        assert broken._closed
        with kafka_resource.offsets_consumer() as after:
            assert after is not broken
        with kafka_resource.offsets_consumer() as assigned:
            assigned.assign([TopicPartition(kafka_resource.topic(SOURCE), 0)])
        assert assigned._closed, "one given partitions is closed, not kept"
        with pytest.raises(ValueError), kafka_resource.producer() as failed:
            raise ValueError("the run failed mid-send")
        assert failed._closed
        with kafka_resource.producer() as producer:
            assert producer is not failed


@pytest.mark.kafka
def test_without_keeping_every_use_has_its_own_client_closed_after_it(kafka_resource: KafkaResource) -> None:
    assert kafka_kept.kept() is None
    with kafka_resource.offsets_consumer() as one:
        pass
    with kafka_resource.offsets_consumer() as two:
        pass
    assert one is not two and one._closed and two._closed


def _in_child(kafka: KafkaResource, rng: OffsetRange, out: multiprocessing.Queue[object]) -> None:
    inherited = kafka_kept.kept()
    kafka_kept.keep_for_this_process()  # as a drain's worker does
    gc.collect()  # the parent's producer, had it been let go, would close itself here
    with kafka.offsets_consumer() as consumer:
        pass
    out.put((inherited is None, consumer._closed, len(read_batch(kafka, CONTRACT, rng).messages)))


@pytest.mark.kafka
def test_a_forked_process_makes_its_own_clients_and_leaves_its_parents_alone(
    kafka_resource: KafkaResource,
) -> None:
    kafka_resource.ensure_topics(partitions=1)
    produce(kafka_resource, {SOURCE: observations(10)})
    (rng,) = ranges(kafka_resource)
    context = multiprocessing.get_context("fork")
    out: multiprocessing.Queue[object] = context.Queue()
    with kafka_kept.keeping():
        with kafka_resource.offsets_consumer() as parents, kafka_resource.producer() as producer:
            pass
        child = context.Process(target=_in_child, args=(kafka_resource, rng, out))
        child.start()
        result = out.get(timeout=60)
        child.join(timeout=60)
        # The parent's kept clients still work after the child came and went (its producer was
        # inherited by the child, which then kept its own).
        with kafka_resource.offsets_consumer() as again, kafka_resource.producer() as same:
            assert (again, same) == (parents, producer)
            assert again.end_offsets([TopicPartition(rng.topic, 0)])[TopicPartition(rng.topic, 0)] == 10
            same.send(rng.topic, value=b"after the child").get(timeout=10)
    assert child.exitcode == 0
    assert result == (True, False, 10), "the child's own kept consumer, open until the child ends"
    assert len(read_batch(kafka_resource, CONTRACT, OffsetRange(rng.topic, 0, 0, 11)).messages) == 11


def _worker_start(kafka: KafkaResource, home: str, out: multiprocessing.Queue[object]) -> None:
    import dagster as dg

    from metrify_assets.orchestration import drain

    Path(home).mkdir(parents=True, exist_ok=True)
    with dg.DagsterInstance.local_temp(home) as instance:
        drain._init(dg.Definitions(), instance.get_ref(), kafka)  # as the pool starts a worker
        keeper = kafka_kept.kept()
        assert keeper is not None
        consumer = keeper.take(kafka._kept_key("offsets_consumer"))
        producer = keeper.take(kafka._kept_key("producer"))
        out.put(
            (consumer is not None and not consumer._closed, producer is not None and not producer._closed)
        )


@pytest.mark.kafka
def test_a_drain_worker_makes_its_first_runs_clients_as_it_starts_and_starts_without_brokers(
    kafka_resource: KafkaResource, tmp_path: Path
) -> None:
    context = multiprocessing.get_context("fork")
    unreachable = KafkaResource(bootstrap_servers=f"127.0.0.1:{free_port()}", timeout_ms=1000)
    results = []
    for kafka in (kafka_resource, unreachable):
        out: multiprocessing.Queue[object] = context.Queue()
        child = context.Process(target=_worker_start, args=(kafka, str(tmp_path / kafka.group_id), out))
        child.start()
        results.append(out.get(timeout=60))
        child.join(timeout=60)
        assert child.exitcode == 0
    assert results == [(True, True), (False, False)], "kept when the brokers answer; none (no error) else"


def refusing_dead_letters(kafka: KafkaResource) -> None:
    """The source topic, and a dead-letter topic whose messages may not exceed 300 bytes."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(**kafka.client_config())
    try:
        small = {"max.message.bytes": "300"}
        admin.create_topics([NewTopic(dlq_topic(kafka.topic(SOURCE)), 1, 1, topic_configs=small)])
    finally:
        admin.close()
    kafka.ensure_topics(partitions=1)


@pytest.mark.kafka
def test_a_producer_whose_send_the_broker_refused_is_closed_not_kept(kafka_resource: KafkaResource) -> None:
    refusing_dead_letters(kafka_resource)
    with kafka_kept.keeping():
        with kafka_resource.producer() as producer:
            future = producer.send(
                dlq_topic(kafka_resource.topic(SOURCE)), value=os.urandom(4_000)
            )  # gzip leaves it as large
        with pytest.raises(KafkaError):
            future.get(timeout=0)
        assert producer._closed
        with kafka_resource.producer() as after:
            assert after is not producer


@pytest.mark.kafka
def test_dead_letters_the_broker_refuses_fail_the_call_instead_of_vanishing(
    kafka_resource: KafkaResource, pg: psycopg.Connection, tmp_path: Path
) -> None:
    refusing_dead_letters(kafka_resource)
    noise = os.urandom(600).hex()  # no compression takes the letter under 300 bytes
    bad = [orjson.dumps({"station_id": "W9", "observed_at": "x", "note": noise}).decode()]
    produce(kafka_resource, {SOURCE: bad})
    (rng,) = ranges(kafka_resource)
    batch = read_batch(kafka_resource, CONTRACT, rng)
    result = process_batch(
        batch.spec, batch.messages, batch.offsets, LakeResource(url=str(tmp_path)).get_lake(), pg,
        pd.Timestamp.now(tz="UTC"),
    )  # fmt: skip
    pg.commit()
    assert len(result.quarantined) == 1
    with kafka_kept.keeping(), pytest.raises(KafkaError, match="MessageSizeTooLarge"):
        dead_letter(kafka_resource, batch, result)
