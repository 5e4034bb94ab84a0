"""Kafka clients a drain's process keeps from run to run (`resources.kafka_kept`), on the real broker:
each use still reads exactly its range and sends every letter; a client whose use failed is never
handed out again; a forked process never uses its parent's."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import orjson
import pytest

from metrify_assets.contracts import CONTRACTS
from metrify_assets.ingestion.kafka.batches import read_batch
from metrify_assets.ingestion.kafka.produce import produce
from metrify_assets.ingestion.kafka.ranges import OffsetRange
from metrify_assets.resources import kafka_kept
from metrify_assets.resources.kafka import KafkaResource
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
def test_a_kept_consumer_reads_each_range_exactly_with_nothing_left_from_the_one_before(
    kafka_resource: KafkaResource,
) -> None:
    kafka_resource.ensure_topics(partitions=3)
    produce(kafka_resource, {SOURCE: observations(60)})
    planned = ranges(kafka_resource)
    assert len(planned) >= 2, "the keys spread over more than one partition"
    fresh = [read_batch(kafka_resource, CONTRACT, rng) for rng in planned]
    with kafka_kept.keeping():
        with kafka_resource.consumer() as first:
            pass
        # Each range, then the first again (a replay), read through the one kept consumer.
        kept = [read_batch(kafka_resource, CONTRACT, rng) for rng in [*planned, planned[0]]]
        with kafka_resource.consumer() as last:
            assert last is first, "the same consumer, use after use"
            assert not last.assignment(), "given back with no partitions assigned"
    assert first._closed, "closed when the keeping ends"
    for batch, expected in zip(kept, [*fresh, fresh[0]], strict=True):
        assert batch.range == expected.range
        assert (batch.offsets, batch.messages) == (expected.offsets, expected.messages)
    assert sum(len(b.messages) for b in kept[:-1]) == 60


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
        with pytest.raises(ValueError), kafka_resource.consumer() as broken:
            raise ValueError("the run failed mid-read")
        assert broken._closed
        with kafka_resource.consumer() as after:
            assert after is not broken
        with pytest.raises(ValueError), kafka_resource.producer() as failed:
            raise ValueError("the run failed mid-send")
        assert failed._closed
        with kafka_resource.producer() as producer:
            assert producer is not failed


@pytest.mark.kafka
def test_without_keeping_every_use_has_its_own_client_closed_after_it(kafka_resource: KafkaResource) -> None:
    assert kafka_kept.kept() is None
    with kafka_resource.consumer() as one:
        pass
    with kafka_resource.consumer() as two:
        pass
    assert one is not two and one._closed and two._closed


def _in_child(kafka: KafkaResource, rng: OffsetRange, out: multiprocessing.Queue[object]) -> None:
    inherited = kafka_kept.kept()
    kafka_kept.keep_for_this_process()  # as a drain's worker does
    with kafka.consumer() as consumer:
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
        with kafka_resource.consumer() as parents:
            pass
        child = context.Process(target=_in_child, args=(kafka_resource, rng, out))
        child.start()
        result = out.get(timeout=60)
        child.join(timeout=60)
        # The parent's kept consumer still works after the child came and went.
        assert len(read_batch(kafka_resource, CONTRACT, rng).messages) == 10
        with kafka_resource.consumer() as again:
            assert again is parents
    assert child.exitcode == 0
    assert result == (True, False, 10), "the child's own kept consumer, open until the child ends"


def _worker_start(kafka: KafkaResource, home: str, out: multiprocessing.Queue[object]) -> None:
    import dagster as dg

    from metrify_assets.orchestration import drain

    Path(home).mkdir(parents=True, exist_ok=True)
    with dg.DagsterInstance.local_temp(home) as instance:
        drain._init(dg.Definitions(), instance.get_ref(), kafka)  # as the pool starts a worker
        keeper = kafka_kept.kept()
        assert keeper is not None
        consumer = keeper.take(kafka._kept_key("consumer"))
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
