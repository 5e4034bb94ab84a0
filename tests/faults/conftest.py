"""Helpers of the fault suite."""

from __future__ import annotations

from kafka import KafkaConsumer, TopicPartition

from metrify_assets.resources.kafka import KafkaResource, dlq_topic


def read_topic(bootstrap_servers: str, topic: str) -> list[tuple[bytes | None, dict[str, bytes]]]:
    """Every record of `topic` from the beginning: value and headers."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        out: list[tuple[bytes | None, dict[str, bytes]]] = []
        while any(consumer.position(tp) < end[tp] for tp in tps):
            for records in consumer.poll(timeout_ms=1000).values():
                out += [(r.value, dict(r.headers)) for r in records]
        return out
    finally:
        consumer.close()


def dead_letters(kafka: KafkaResource, source: str) -> list[tuple[bytes | None, dict[str, bytes]]]:
    return read_topic(kafka.bootstrap_servers, dlq_topic(kafka.topic(source)))
