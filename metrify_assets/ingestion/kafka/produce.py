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


# A message with this header (value b"1") is declared history: its records are not scored for timeliness.
BACKFILL_HEADER = "metrify-backfill"


def is_backfill(headers: Sequence[tuple[str, bytes | None]] | None) -> bool:
    """Whether a consumed message's headers declare it a backfill."""
    return any(name == BACKFILL_HEADER and value == b"1" for name, value in headers or ())


def produce(
    kafka: KafkaResource,
    messages: Mapping[str, Sequence[str]],
    on_sent: Callable[[str, int], None] | None = None,
    backfill: bool = False,
) -> dict[str, int]:
    """Send every source's messages to its topic (batched, idempotent, flushed before returning);
    `backfill` marks them history with the `metrify-backfill` header."""
    sent: dict[str, int] = {}
    headers = [(BACKFILL_HEADER, b"1")] if backfill else None
    with kafka.producer() as producer:
        for source, lines in messages.items():
            topic = kafka.topic(source)
            for line in lines:
                producer.send(topic, key=message_key(source, line), value=line.encode(), headers=headers)
            sent[source] = len(lines)
            if on_sent:
                on_sent(source, len(lines))
    return sent
