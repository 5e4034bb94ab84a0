"""Concurrent writers on a real PostgreSQL (and Kafka): overlapping ingest runs, ingest during a replay.

Each scenario starts its two writers at once (a barrier), a few rounds to make races likely, and
compares the result with the same work done one after the other.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from functools import partial
from pathlib import Path
from typing import TypeVar

import dagster as dg
import pandas as pd
import psycopg
import pytest

from metrify_assets.contracts import WEATHER_OBSERVATIONS
from metrify_assets.ingestion import dead_letters, replay
from metrify_assets.ingestion.batch import BatchResult, BatchSpec, process_batch
from metrify_assets.ingestion.kafka.produce import produce
from metrify_assets.ingestion.kafka.ranges import OffsetRange
from metrify_assets.orchestration.instance import execute_job
from metrify_assets.resources import PostgresResource
from metrify_assets.resources.kafka import KafkaResource
from metrify_assets.resources.lake import Lake
from metrify_assets.storage.migrate import truncate_ops
from tests.faults.conftest import assert_ledger_balances, table_checksum

pytestmark = [pytest.mark.faults, pytest.mark.postgres]
SOURCE = "weather_observations"
JOB = f"ingest_{SOURCE}_job"
ROUNDS = 3
FaultLog = Callable[[str, str, float, Sequence[str]], None]
A = TypeVar("A")
B = TypeVar("B")


def observation(station: str, at: pd.Timestamp, temperature: float) -> str:
    return json.dumps(
        {"station_id": station, "observed_at": at.strftime("%Y-%m-%dT%H:%M:%SZ"), "temperature_c": temperature,
         "humidity_pct": 80, "pressure_hpa": 1012, "wind_speed_ms": 3.2, "precipitation_mm": 0}
    )  # fmt: skip


def at_once(first: Callable[[], A], second: Callable[[], B]) -> tuple[A, B]:
    """Run both in threads released together by a barrier (no head start); re-raises their errors."""
    barrier = threading.Barrier(2)

    def released(task: Callable[[], A | B]) -> A | B:
        barrier.wait(timeout=60)
        return task()

    with ThreadPoolExecutor(2) as pool:
        one, two = pool.submit(released, first), pool.submit(released, second)
        return one.result(), two.result()  # type: ignore[return-value]


def scalar(conn: psycopg.Connection, query: str, params: Sequence[object] | None = None) -> object:
    row = conn.execute(query, params).fetchone()
    conn.commit()
    assert row is not None
    return row[0]


def restarts(result: dg.JobExecutionResult) -> int:
    return sum(1 for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_RESTARTED)


@pytest.mark.kafka
def test_overlapping_kafka_ranges_ingested_at_once_equal_the_serial_result(
    kafka_defs: dg.Definitions,
    kafka_resource: KafkaResource,
    pg: psycopg.Connection,
    fault_log: FaultLog,
) -> None:
    """Two runs of overlapping ranges (a sensor re-request while the first still runs) upsert the same
    keys at the same time: a deadlock between them is a system error the step's retry policy absorbs,
    and both must end with the state of the same two runs one after the other."""
    kafka_resource.ensure_topics(partitions=1)
    topic = kafka_resource.topic(SOURCE)
    start = pd.Timestamp("2026-03-29T10:00:00Z")
    records = [
        observation(f"S{s}", start + pd.Timedelta(minutes=10 * m), 5.0 + s + m / 10)
        for m in range(10)
        for s in range(6)
    ]
    produce(kafka_resource, {SOURCE: records})
    ranges = [OffsetRange(topic, 0, 0, 40), OffsetRange(topic, 0, 20, 60)]

    def run(rng: OffsetRange, instance: dg.DagsterInstance) -> dg.JobExecutionResult:
        return execute_job(kafka_defs, JOB, instance, run_config=rng.run_config(SOURCE))

    for rng in ranges:
        run(rng, dg.DagsterInstance.ephemeral())
    serial = table_checksum(pg, SOURCE)
    assert serial[0] == len(records)
    assert_ledger_balances(pg, 80)

    seconds, retried = 0.0, 0
    for _ in range(ROUNDS):
        truncate_ops(pg)
        instances = [dg.DagsterInstance.ephemeral() for _ in ranges]
        started = time.perf_counter()
        results = at_once(partial(run, ranges[0], instances[0]), partial(run, ranges[1], instances[1]))
        seconds += time.perf_counter() - started
        assert all(r.success for r in results)
        retried += sum(restarts(r) for r in results)
        assert table_checksum(pg, SOURCE) == serial
        assert scalar(pg, "SELECT count(*) FROM ops.ingest_ledger") == len(ranges)
        invariants = assert_ledger_balances(pg, 80)
    fault_log(
        f"two ingest runs of overlapping Kafka ranges [0,40) and [20,60) at once, x{ROUNDS}",
        f"row locks serialise the upserts; step retries on deadlock: {retried}",
        seconds,
        [*invariants, "checksum = serial runs", "both runs succeeded"],
    )


NOW = pd.Timestamp("2026-04-01T00:00:00Z")
LATER = NOW + pd.Timedelta(hours=3)  # the ingest host's clock fixed: A's "future" is now the past
PAST = [observation("W1", NOW - pd.Timedelta(minutes=10 * (i + 1)), 8.0 + i / 10) for i in range(12)]
AHEAD_AT = [NOW + pd.Timedelta(minutes=10 * (i + 1)) for i in range(10)]
# Batch A: on time readings, and 20 the slow clock made look like the future (quarantined).
BATCH_A = PAST + [observation(s, t, 10.0 + i / 10) for i, t in enumerate(AHEAD_AT) for s in ("W1", "W2")]
# Batch B, later: newer versions (corrections) of W1's quarantined keys, and a new station.
BATCH_B = [observation("W1", t, 20.0 + i / 10) for i, t in enumerate(AHEAD_AT)] + [
    observation("W3", t, 30.0 + i / 10) for i, t in enumerate(AHEAD_AT)
]
VERSION_A, VERSION_B = 5, 9


def ingest(
    conn: psycopg.Connection, lake: Lake, batch_id: str, messages: list[str], version: int, now: pd.Timestamp
) -> BatchResult:
    spec = BatchSpec(WEATHER_OBSERVATIONS, batch_id, "landing", f"{batch_id}.jsonl", date(2026, 4, 1))
    result = process_batch(spec, messages, [version] * len(messages), lake, conn, now)
    conn.commit()
    return result


def test_ingesting_while_a_dead_letter_replay_runs_keeps_the_newer_versions(
    pg: psycopg.Connection, pg_resource: PostgresResource, tmp_path: Path, fault_log: FaultLog
) -> None:
    """A replay re-upserts old versions of keys a newer batch may be writing at that moment: the newer
    version must win whichever commits first, and the replay resolves its rows without adding any."""

    def quarantine_a(lake: Lake) -> list[dead_letters.DeadLetter]:
        result = ingest(pg, lake, "A", BATCH_A, VERSION_A, NOW)
        assert (result.ledger.accepted, result.ledger.quarantined) == (12, 20)
        letters = dead_letters.select(pg, dead_letters.Selection(batch_ids=("A",)))
        pg.commit()
        assert len(letters) == 20 and all(d.replayable for d in letters)
        return letters

    def replay_a(lake: Lake, letters: list[dead_letters.DeadLetter]) -> replay.ReplayResult:
        with pg_resource.connect() as conn:
            return replay.replay(conn, lake, letters, LATER)

    def ingest_b(lake: Lake) -> BatchResult:
        with pg_resource.connect() as conn:
            return ingest(conn, lake, "B", BATCH_B, VERSION_B, LATER)

    serial: list[tuple[int, str]] = []
    for i, order in enumerate(("replay first", "B first")):
        truncate_ops(pg)
        lake = Lake(str(tmp_path / f"serial{i}"))
        letters = quarantine_a(lake)
        if order == "replay first":
            replay_a(lake, letters)
            ingest_b(lake)
        else:
            ingest_b(lake)
            replay_a(lake, letters)
        serial.append(table_checksum(pg, SOURCE))
    assert serial[0] == serial[1]  # B's newer versions win in either order
    assert serial[0][0] == 12 + 20 + 10
    newer = pg.execute(
        "SELECT temperature_c, record_version FROM ops.weather_observations WHERE station_id = 'W1' "
        "AND observed_at > %s ORDER BY observed_at",
        (NOW,),
    ).fetchall()
    pg.commit()
    assert newer == [(20.0 + i / 10, VERSION_B) for i in range(10)]

    seconds = 0.0
    for i in range(ROUNDS):
        truncate_ops(pg)
        lake = Lake(str(tmp_path / f"round{i}"))
        letters = quarantine_a(lake)
        started = time.perf_counter()
        replayed, ingested = at_once(partial(replay_a, lake, letters), partial(ingest_b, lake))
        seconds += time.perf_counter() - started
        assert (replayed.replayed, replayed.accepted, replayed.still_quarantined) == (20, 20, 0)
        assert (ingested.ledger.accepted, ingested.ledger.quarantined) == (20, 0)
        assert table_checksum(pg, SOURCE) == serial[0]
        quarantine = pg.execute(
            "SELECT count(*), count(*) FILTER (WHERE resolved_by = %s AND replays = 1) FROM ops.quarantine",
            (replayed.batch_id,),
        ).fetchone()
        pg.commit()
        assert quarantine == (20, 20)  # resolved in place, once each, none added
        invariants = assert_ledger_balances(pg, len(BATCH_A) + len(BATCH_B))
    fault_log(
        f"ingest of newer versions while a dead-letter replay of the same keys runs, x{ROUNDS}",
        "version-guarded upsert: the replayed older versions never overwrite B's",
        seconds,
        [*invariants, "checksum = serial (either order)", "quarantine rows resolved, none added"],
    )
