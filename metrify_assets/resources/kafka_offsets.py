"""Offsets only, never payloads: what a sensor tick or `metrify kafka drain` asks the brokers."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:  # kafka-python is loaded by the consumer these functions open
    from kafka import KafkaConsumer, TopicPartition

    from metrify_assets.resources.kafka import KafkaResource


class TopicOffsets(NamedTuple):
    beginning: dict[int, int]
    end: dict[int, int]
    committed: dict[int, int]  # the ingest group's (partitions it never committed are left out)


def topic_offsets(kafka: KafkaResource, topic: str) -> TopicOffsets:
    """Beginning, end and committed offset of each partition of `topic` (all empty when the topic is
    missing), through one consumer: a sensor tick opened one for the first two and another for the
    commits, each a bootstrap and a metadata request.

    Raises a `kafka.errors.KafkaError` (KafkaTimeoutError in kafka-python 3.x) when the brokers
    cannot be reached within the resource's timeout.
    """
    from kafka import TopicPartition

    with kafka.offsets_consumer() as consumer:
        # The topics are asked of the brokers each time: a kept consumer's metadata may predate a
        # topic or partitions made since (kafka-python refreshes it every 5 minutes).
        known = consumer.topics()
        partitions = consumer.partitions_for_topic(topic) if topic in known else set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions or set())]
        if not tps:
            return TopicOffsets({}, {}, {})
        begin = consumer.beginning_offsets(tps)
        end = consumer.end_offsets(tps)
        committed = _committed(consumer, tps)
    return TopicOffsets(
        {tp.partition: o for tp, o in begin.items()}, {tp.partition: o for tp, o in end.items()}, committed
    )


def _committed(consumer: KafkaConsumer, tps: list[TopicPartition]) -> dict[int, int]:
    """One OffsetFetch request for every partition, where `KafkaConsumer.committed` sends one per
    partition (a third of a drain's first tick on 3 partitions). The coordinator's call is the one
    `committed` makes, private to kafka-python (pinned below 3.1 in pyproject.toml); bounded by the
    consumer's request timeout (`committed` waits for ever), so an unreachable coordinator raises
    KafkaTimeoutError as the other offset requests do."""
    fetched = consumer._coordinator.fetch_committed_offsets(
        tps,
        timeout_ms=consumer.config["request_timeout_ms"],  # as beginning_offsets waits
    )
    return {tp.partition: fetched[tp].offset for tp in tps if tp in fetched}


def consumer_lag(beginning: dict[int, int], end: dict[int, int], committed: dict[int, int]) -> dict[int, int]:
    """Messages per partition that the ingest group has not committed yet (never committed: all)."""
    return {p: max(0, end[p] - committed.get(p, beginning.get(p, 0))) for p in sorted(end)}
