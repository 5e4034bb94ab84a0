"""Ingestion over the API: an accepted request is landed as one file, or, when Kafka is configured, sent
as one contract-v1 message per meter (grid node, station) keyed by it, so each owner's record versions
are offsets of one partition; it is recorded in `ops.api_batches` so the caller can poll its fate.

Its status resolves from the ledger once the pipeline has processed it: a landing request is its own
batch (exact counts); each Kafka message is one message of a micro-batch, so its records are found by
their position in the micro-batch's raw copy (the decoder numbers records message by message) and
counted against the quarantine, and the request is processed once all its messages are. Once known,
the figures are stored on the request's row.
"""

from __future__ import annotations

import gzip
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import orjson
import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from metrify_assets.contracts import contract_for
from metrify_assets.ingestion.decode import decode
from metrify_assets.ingestion.kafka.produce import owner_messages
from metrify_assets.ingestion.landing import land_lines
from metrify_assets.observability.api_spans import link_batch
from metrify_assets.quality.quarantine import reason_code
from metrify_assets.resources.lake import Lake
from metrify_assets.serving.kafka import Delivery
from metrify_assets.storage.audit import Caller

RESOLVE_MARGIN = timedelta(hours=1)


class Sender(Protocol):
    """Sends (key, value) messages to a source's topic; returns where each was stored once all are
    acknowledged, else raises `SendError`."""

    def __call__(self, source: str, messages: Sequence[tuple[bytes | None, bytes]]) -> list[Delivery]: ...


@dataclass(frozen=True)
class ApiBatch:
    batch_id: str
    source: str
    destination: str
    records: int
    subject: str
    received_at: datetime
    status: str  # queued, processed
    token_id: str | None = None  # the `jti` of the token that posted it (None: the token had none)
    accepted: int | None = None
    quarantined: int | None = None
    reasons: dict[str, int] | None = None
    processed_at: datetime | None = None
    ledger_batch_id: str | None = None
    kafka: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        body = {k: v for k, v in self.__dict__.items() if k != "kafka"}
        if self.kafka:
            body["kafka"] = self.kafka
        return body


def record_count(body: Any) -> int:
    """Records in a validated body: a batch's list, else one."""
    if isinstance(body, dict) and isinstance(body.get("records"), list):
        return len(body["records"])
    return 1


def kafka_extent(delivered: Sequence[Delivery]) -> dict[str, Any]:
    """Where a request's messages went, for its audit entry: how many, and per partition the first
    and last offset and how many of them are the request's (all of the range when `messages` is
    `last_offset - first_offset + 1`; fewer when another request's messages came between, whose
    offsets the request's row, `ops.api_batches.kafka_messages`, lists one by one). One entry per
    partition, so the entry's size is bounded by the topic's partitions, not the request's messages."""
    partitions: dict[int, dict[str, int]] = {}
    for d in delivered:
        extent = partitions.setdefault(
            d.partition, {"first_offset": d.offset, "last_offset": d.offset, "messages": 0}
        )
        extent["first_offset"] = min(extent["first_offset"], d.offset)
        extent["last_offset"] = max(extent["last_offset"], d.offset)
        extent["messages"] += 1
    return {
        "kafka_messages": len(delivered),
        "kafka_partitions": [{"partition": p, **partitions[p]} for p in sorted(partitions)],
    }


def accept(
    conn: psycopg.Connection,
    source: str,
    body: Any,
    *,
    subject: str,
    client: str | None,
    token_id: str | None,
    landing_dir: Path,
    send: Sender | None,
) -> ApiBatch:
    """Send (one message per owner) or land (one file) a validated body and record the request, with the
    token's subject and id (`token_id`, its `jti`: a leaked token's batches can be found) and its
    `ingest.post` audit entry (the same subject, client address and token id) in the same
    transaction; commits."""
    batch_id = f"api-{uuid.uuid4().hex}"
    message = orjson.dumps(body)
    records = record_count(body)
    row: dict[str, Any] = {
        "landing_batch_id": None,
        "kafka_topic": None,
        "kafka_partition": None,
        "kafka_offset": None,
    }
    messages: list[dict[str, Any]] = []
    if send is not None:
        destination = "kafka"
        parts = owner_messages(source, body, message)
        delivered = send(source, parts)
        topic, partition, offset = delivered[0]
        row.update(kafka_topic=topic, kafka_partition=partition, kafka_offset=offset)
        counts = [record_count(orjson.loads(value)) if len(parts) > 1 else records for _, value in parts]
        messages = [
            {"partition": d.partition, "offset": d.offset, "records": n}
            for d, n in zip(delivered, counts, strict=True)
        ]
        where: dict[str, Any] = {"kafka_topic": topic, **kafka_extent(delivered)}
    else:
        destination = "landing"
        landed = land_lines(landing_dir, source, [message.decode()])
        row["landing_batch_id"] = landed.batch_id
        where = {"landing_batch_id": landed.batch_id}
    link_batch(batch_id, row)  # the request's span names the batch (docs/operations.md#traces)
    received_at = conn.execute(
        "INSERT INTO ops.api_batches (batch_id, source, destination, landing_batch_id, kafka_topic, kafka_partition, "
        "kafka_offset, kafka_messages, records, subject, token_id, client) VALUES (%(batch_id)s, %(source)s, "
        "%(destination)s, %(landing_batch_id)s, %(kafka_topic)s, %(kafka_partition)s, %(kafka_offset)s, "
        "%(kafka_messages)s, %(records)s, %(subject)s, %(token_id)s, %(client)s) RETURNING received_at",
        {
            "batch_id": batch_id,
            "kafka_messages": Jsonb(messages) if messages else None,
            "source": source,
            "destination": destination,
            "records": records,
            "subject": subject,
            "token_id": token_id,
            "client": client,
            **row,
        },
    ).fetchone()
    details = {"source": source, "destination": destination, **where}
    Caller.api(subject, client, token_id).record(
        conn, "ingest.post", f"api_batch:{batch_id}", details, records
    )
    conn.commit()
    assert received_at is not None
    kafka = (
        {
            "topic": row["kafka_topic"],
            "partition": row["kafka_partition"],
            "offset": row["kafka_offset"],
            "messages": messages,
        }
        if send
        else None
    )
    return ApiBatch(
        batch_id, source, destination, records, subject, received_at[0], "queued", token_id, kafka=kafka
    )


def status(conn: psycopg.Connection, lake: Lake, batch_id: str) -> ApiBatch | None:
    """The request's fate: queued until the pipeline has processed it, then its counts; None if unknown."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute("SELECT * FROM ops.api_batches WHERE batch_id = %s", (batch_id,)).fetchone()
    if row is None:
        return None
    kafka = None
    if row["destination"] == "kafka":
        kafka = {
            "topic": row["kafka_topic"],
            "partition": row["kafka_partition"],
            "offset": row["kafka_offset"],
            # A row written before migration 0025 held one message.
            "messages": row["kafka_messages"]
            or [
                {
                    "partition": row["kafka_partition"],
                    "offset": row["kafka_offset"],
                    "records": row["records"],
                }
            ],
        }
    if row["ledger_batch_id"] is None:
        resolved = (
            _resolve_landing(conn, row["landing_batch_id"])
            if kafka is None
            else _resolve_messages(
                conn, lake, row["source"], row["kafka_topic"], kafka["messages"], row["received_at"]
            )
        )
        if resolved is not None:
            names = ("ledger_batch_id", "accepted", "quarantined", "reasons", "processed_at")
            row.update(zip(names, resolved, strict=True))
            conn.execute(
                "UPDATE ops.api_batches SET ledger_batch_id = %s, accepted = %s, quarantined = %s, reasons = %s, "
                "processed_at = %s, kafka_messages = %s WHERE batch_id = %s",
                (
                    *resolved[:3],
                    Jsonb(resolved[3]),
                    resolved[4],
                    kafka and Jsonb(kafka["messages"]),
                    batch_id,
                ),
            )
            conn.commit()
    return ApiBatch(
        row["batch_id"],
        row["source"],
        row["destination"],
        row["records"],
        row["subject"],
        row["received_at"],
        "processed" if row["ledger_batch_id"] else "queued",
        row["token_id"],
        row["accepted"],
        row["quarantined"],
        row["reasons"],
        row["processed_at"],
        row["ledger_batch_id"],
        kafka,
    )


Resolution = tuple[str, int | None, int | None, dict[str, int], datetime]


def _reasons(
    conn: psycopg.Connection, ledger_id: str, indices: range | None = None
) -> tuple[int, dict[str, int]]:
    """Quarantined records of a ledger batch (those at `indices` only, when given) and their count by
    reason code (a record may have several; a parser's detail or a reviewer's note is not a code)."""
    query = "SELECT record_index, reasons FROM ops.quarantine WHERE batch_id = %s"
    counts: Counter[str] = Counter()
    records = 0
    for index, reasons in conn.execute(query, (ledger_id,)).fetchall():
        if indices is None or index in indices:
            records += 1
            counts.update(reason_code(r) for r in reasons.split(",") if r)
    return records, dict(counts.most_common())


def _resolve_landing(conn: psycopg.Connection, landing_id: str) -> Resolution | None:
    row = conn.execute(
        "SELECT accepted, quarantined, processed_at FROM ops.ingest_ledger WHERE batch_id = %s", (landing_id,)
    ).fetchone()
    if row is None:
        return None
    accepted, quarantined, processed_at = row
    return landing_id, accepted, quarantined, _reasons(conn, landing_id)[1], processed_at


def _resolve_messages(
    conn: psycopg.Connection,
    lake: Lake,
    source: str,
    topic: str,
    messages: list[dict[str, Any]],
    received_at: datetime,
) -> Resolution | None:
    """A Kafka request's fate once every one of its messages is processed (each message gets its
    `ledger_batch_id`): the counts summed (unknown if one message's are), the reasons merged, the
    first message's micro-batch and the last processing time; None while any message is queued."""
    found = []
    for message in messages:
        resolved = _resolve_kafka(
            conn, lake, source, topic, message["partition"], message["offset"], received_at
        )
        if resolved is None:
            return None
        found.append(resolved)
    for message, resolved in zip(messages, found, strict=True):
        message["ledger_batch_id"] = resolved[0]
    accepted = [r[1] for r in found]
    quarantined = [r[2] for r in found]
    reasons: Counter[str] = Counter()
    for r in found:
        reasons.update(r[3])
    return (
        found[0][0],
        None if None in accepted else sum(a for a in accepted if a is not None),
        None if None in quarantined else sum(q for q in quarantined if q is not None),
        dict(reasons.most_common()),
        max(r[4] for r in found),
    )


def _resolve_kafka(
    conn: psycopg.Connection,
    lake: Lake,
    source: str,
    topic: str,
    partition: int,
    offset: int,
    received_at: datetime,
) -> Resolution | None:
    prefix = f"{topic}-{partition}-".replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    rows = conn.execute(
        "SELECT batch_id, raw_key, processed_at FROM ops.ingest_ledger WHERE source = %s AND origin = 'kafka' "
        "AND processed_at >= %s AND origin_ref LIKE %s",
        # The request's row is written after the broker's acknowledgement: a range processed in between
        # is found too (the offset check below picks the one range that holds the message).
        (source, received_at - RESOLVE_MARGIN, prefix + "%"),
    ).fetchall()
    for ledger_id, raw_key, processed_at in rows:
        start, end = (int(p) for p in ledger_id.rsplit("-", 2)[1:])
        if start <= offset < end:
            lines = gzip.decompress(lake.get(raw_key)).split(b"\n")[:-1]
            position = offset - start
            if len(lines) != end - start:
                # Offsets not contiguous, or another producer's message spans lines: the message cannot
                # be placed, so the request is processed with its counts unknown (and not looked up again).
                return ledger_id, None, None, {}, processed_at
            decoded = decode(contract_for(source), lines, [0] * len(lines))
            mine = [i for i, p in enumerate(decoded.message_index) if p == position]
            indices = range(mine[0], mine[-1] + 1) if mine else range(0)
            quarantined, reasons = _reasons(conn, ledger_id, indices)
            return ledger_id, len(indices) - quarantined, quarantined, reasons, processed_at
    return None
