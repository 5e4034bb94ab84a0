"""Produce contract-v1 messages to the source topics (`metrify simulate --to kafka`).

Every message holds the records of one natural-key owner (the first key field: meter, grid node,
station) and is keyed by it, so all of one meter's records land in one partition in order: its stored
`record_version` is an offset of that partition, and a re-sent reading gets a higher offset, the newer
version. A batch of several owners is split into one message per owner, each keeping the batch's other
fields (kept in the raw batch, as the contract promises); a batch over `MAX_MESSAGE_RECORDS` is sent
whole, to be dead-lettered whole as the same batch dropped into the landing directory is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from metrify_assets.contracts import CONTRACTS
from metrify_assets.ingestion.limits import MAX_MESSAGE_RECORDS
from metrify_assets.resources.kafka import KafkaResource


def _owner(source: str, record: Any) -> bytes | None:
    value = record.get(CONTRACTS[source].key[0]) if isinstance(record, dict) else None
    return str(value).encode() if value is not None else None


def owner_messages(source: str, body: Any, encoded: bytes | None = None) -> list[tuple[bytes | None, bytes]]:
    """A parsed message as (key, value) messages of one owner each, in the order of their first record;
    `encoded` is the body as sent when it needs no split. A batch `{"records": [...]}` of several
    owners becomes one batch per owner (the records of each in their order, beside the batch's other
    fields); a single record, a batch of one owner, or a batch of more than MAX_MESSAGE_RECORDS
    records (dead-lettered whole, never split into accepted parts) is one message. A record without an owner (it will be quarantined) goes with
    the others that have none, unkeyed."""
    records = body.get("records") if isinstance(body, dict) and "records" in body else None
    if not isinstance(records, list) or len(records) > MAX_MESSAGE_RECORDS:
        return [(_owner(source, body), encoded if encoded is not None else orjson.dumps(body))]
    owners: dict[bytes | None, list[Any]] = {}
    for record in records:
        owners.setdefault(_owner(source, record), []).append(record)
    if len(owners) <= 1:
        key = next(iter(owners), None)
        return [(key, encoded if encoded is not None else orjson.dumps(body))]
    return [(key, orjson.dumps({**body, "records": group})) for key, group in owners.items()]


def line_messages(source: str, line: str) -> list[tuple[bytes | None, bytes]]:
    """`owner_messages` of one message's text; a text that is not JSON is one unkeyed message
    (round-robin: it has no owner, and is quarantined as `malformed`)."""
    encoded = line.encode()
    try:
        parsed = orjson.loads(encoded)
    except orjson.JSONDecodeError:
        return [(None, encoded)]
    return owner_messages(source, parsed, encoded)


# A message with this header (value b"1") is declared history: its records are not scored for timeliness.
BACKFILL_HEADER = "metrify-backfill"


def produce(
    kafka: KafkaResource,
    messages: Mapping[str, Sequence[str]],
    backfill: bool = False,
) -> dict[str, int]:
    """Send every source's messages to its topic (batched, idempotent, flushed before returning);
    `backfill` marks them history with the `metrify-backfill` header. Returns the messages sent per
    source (a line of several owners is several)."""
    sent: dict[str, int] = {}
    headers = [(BACKFILL_HEADER, b"1")] if backfill else None
    with kafka.producer() as producer:
        for source, lines in messages.items():
            topic = kafka.topic(source)
            sent[source] = 0
            for line in lines:
                for key, value in line_messages(source, line):
                    producer.send(topic, key=key, value=value, headers=headers)
                    sent[source] += 1
    return sent
