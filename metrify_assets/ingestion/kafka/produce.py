"""Produce contract-v1 messages to the source topics (`metrify simulate --to kafka`).

Keyed by the record's first natural-key field (meter, grid node, station), so all messages of one
meter land in one partition in order: a re-sent reading gets a higher offset, the newer version.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import orjson

from metrify_assets.contracts import CONTRACTS
from metrify_assets.resources.kafka import KafkaResource


def message_key(source: str, message: str) -> bytes | None:
    """The partitioning key of a message; None (round-robin) for one that is not a JSON record."""
    try:
        parsed = orjson.loads(message)
    except orjson.JSONDecodeError:
        return None
    records = parsed.get("records") if isinstance(parsed, dict) and "records" in parsed else [parsed]
    first = records[0] if isinstance(records, list) and records else None
    value = first.get(CONTRACTS[source].key[0]) if isinstance(first, dict) else None
    return str(value).encode() if value is not None else None


def produce(
    kafka: KafkaResource,
    messages: Mapping[str, Sequence[str]],
    on_sent: Callable[[str, int], None] | None = None,
) -> dict[str, int]:
    """Send every source's messages to its topic (batched, idempotent, flushed before returning)."""
    sent: dict[str, int] = {}
    with kafka.producer() as producer:
        for source, lines in messages.items():
            topic = kafka.topic(source)
            for line in lines:
                producer.send(topic, key=message_key(source, line), value=line.encode())
            sent[source] = len(lines)
            if on_sent:
                on_sent(source, len(lines))
    return sent
