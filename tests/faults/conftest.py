"""Helpers of the fault suite: invariants, and the table of faults tried with their measured recovery."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import psycopg
import pytest
from kafka import KafkaConsumer, TopicPartition

from metrify_assets.contracts import CONTRACTS
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


@dataclass(frozen=True)
class FaultRecord:
    """One fault tried: what was injected, how the system recovered, how long it took, what held."""

    fault: str
    recovery: str
    seconds: float
    invariants: tuple[str, ...]


_RECORDS: list[FaultRecord] = []


@pytest.fixture
def fault_log() -> Callable[[str, str, float, Sequence[str]], None]:
    """Record a fault's measured recovery; the session prints the table (and writes it as JSON to
    `$METRIFY_FAULT_REPORT` when set), which docs/reliability.md reports."""

    def log(fault: str, recovery: str, seconds: float, invariants: Sequence[str]) -> None:
        _RECORDS.append(FaultRecord(fault, recovery, round(seconds, 2), tuple(invariants)))

    return log


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _RECORDS:
        return
    terminalreporter.section("faults: injected, recovered, invariants held")
    for r in _RECORDS:
        terminalreporter.write_line(
            f"{r.fault} | {r.recovery} | {r.seconds:.2f} s | {', '.join(r.invariants)}"
        )
    if path := os.environ.get("METRIFY_FAULT_REPORT"):
        Path(path).write_text(json.dumps([asdict(r) for r in _RECORDS], indent=2))


def table_checksum(conn: psycopg.Connection, source: str) -> tuple[int, str]:
    """Rows and an md5 over the contract columns and versions of `ops.<table>` (which batch wrote a
    row, and when, left out): equal after a fault and after a clean run of the same input."""
    contract = CONTRACTS[source]
    columns = [*contract.columns, "record_version"]
    expr = ", ".join(f"coalesce({c}::text, '')" for c in columns)
    order = ", ".join(contract.key)
    row = conn.execute(
        f"SELECT count(*), coalesce(md5(string_agg(concat_ws('|', {expr}), ',' ORDER BY {order})), '') "
        f"FROM ops.{contract.table}"
    ).fetchone()
    conn.commit()
    assert row is not None
    return int(row[0]), str(row[1])


def assert_ledger_balances(conn: psycopg.Connection, records_in: int) -> list[str]:
    """Every record that came in is accepted or quarantined, counted once; returns what was checked."""
    row = conn.execute(
        "SELECT coalesce(sum(records_in), 0), coalesce(sum(accepted + quarantined), 0), count(*) "
        "FROM ops.ingest_ledger WHERE origin <> 'replay'"
    ).fetchone()
    quarantined = conn.execute(
        "SELECT count(*) FROM ops.quarantine q JOIN ops.ingest_ledger l USING (batch_id) WHERE l.origin <> 'replay'"
    ).fetchone()
    ledger_q = conn.execute(
        "SELECT coalesce(sum(quarantined), 0) FROM ops.ingest_ledger WHERE origin <> 'replay'"
    ).fetchone()
    conn.commit()
    assert row is not None and row[0] == row[1] == records_in, row
    assert quarantined == ledger_q, (quarantined, ledger_q)
    return ["ledger in = accepted + quarantined", "quarantine rows = ledger quarantined"]
