"""Offsets only, never payloads: what a sensor tick or `metrify kafka drain` asks the brokers."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # kafka-python is loaded by the consumer these functions open
    from metrify_assets.resources.kafka import KafkaResource


def topic_offsets(kafka: KafkaResource, topic: str) -> tuple[dict[int, int], dict[int, int]]:
    """Beginning and end offset of each partition of `topic` (both empty when the topic is missing).

    Raises a `kafka.errors.KafkaError` (KafkaTimeoutError in kafka-python 3.x) when the brokers
    cannot be reached within the resource's timeout.
    """
    from kafka import TopicPartition

    with kafka.consumer() as consumer:
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return {}, {}
        begin = consumer.beginning_offsets(tps)
        end = consumer.end_offsets(tps)
    return {tp.partition: o for tp, o in begin.items()}, {tp.partition: o for tp, o in end.items()}


def committed_offsets(kafka: KafkaResource, topic: str) -> dict[int, int]:
    """The ingest group's committed offset per partition (partitions it never committed are left out)."""
    from kafka import TopicPartition

    with kafka.consumer() as consumer:
        out: dict[int, int] = {}
        for partition in sorted(consumer.partitions_for_topic(topic) or set()):
            committed = consumer.committed(TopicPartition(topic, partition))
            if committed is not None:
                out[partition] = committed
        return out


def consumer_lag(beginning: dict[int, int], end: dict[int, int], committed: dict[int, int]) -> dict[int, int]:
    """Messages per partition that the ingest group has not committed yet (never committed: all)."""
    return {p: max(0, end[p] - committed.get(p, beginning.get(p, 0))) for p in sorted(end)}
