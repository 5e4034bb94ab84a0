"""Kafka micro-batches on a real Apache Kafka broker, a real Dagster instance and PostgreSQL.

Sensor ticks plan offset ranges; the runs they request read exactly those ranges, dead-letter the
bad records and commit. Replays of the same or overlapping ranges change nothing.
"""

from __future__ import annotations

import gc
import json
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import psycopg
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import TopicAlreadyExistsError

from metrify_assets.alerts.store import list_alerts
from metrify_assets.contracts import contract_for
from metrify_assets.ingestion.kafka.batches import commit_range, lock_partition, read_batch
from metrify_assets.ingestion.kafka.produce import produce
from metrify_assets.ingestion.kafka.ranges import OffsetRange
from metrify_assets.ingestion.kafka.sensor import kafka_tick
from metrify_assets.orchestration.instance import RunFailedError, execute_job
from metrify_assets.partitions import TRIGGER_TAG
from metrify_assets.resources import PostgresResource
from metrify_assets.resources.kafka import KafkaResource, dlq_topic
from metrify_assets.resources.kafka_offsets import topic_offsets
from metrify_platform.kafka_broker import free_port

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]
SOURCE = "weather_observations"
JOB = f"ingest_{SOURCE}_job"
SENSOR = f"kafka_{SOURCE}_sensor"
BAD = ["{not json", json.dumps({"station_id": "W9"}), json.dumps({"station_id": "W9", "observed_at": "x"})]


def observation(station: str, minute: int, temperature: float = 9.5) -> str:
    return json.dumps(
        {"station_id": station, "observed_at": f"2026-03-29T10:{minute:02d}:00Z", "temperature_c": temperature,
         "humidity_pct": 80, "pressure_hpa": 1012, "wind_speed_ms": 3.2, "precipitation_mm": 0}
    )  # fmt: skip


@pytest.fixture
def defs(kafka_defs: dg.Definitions) -> dg.Definitions:
    return kafka_defs


def tick(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    kafka: KafkaResource,
    pg: PostgresResource,
    cursor: str | None,
) -> dg.SensorResult | dg.SkipReason:
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"kafka": kafka, "postgres": pg}
    )
    return defs.resolve_sensor_def(SENSOR).evaluate_tick(context)


def run_all(defs: dg.Definitions, instance: dg.DagsterInstance, requests: list[dg.RunRequest]) -> None:
    for request in requests:
        execute_job(defs, JOB, instance, run_config=dict(request.run_config), tags=request.tags)


def checksum(conn: psycopg.Connection) -> tuple[object, ...]:
    """Content of the operational table (bookkeeping of which batch wrote a row left out)."""
    row = conn.execute(
        "SELECT count(*), md5(string_agg(concat_ws('|', station_id, observed_at, temperature_c, humidity_pct, "
        "pressure_hpa, wind_speed_ms, precipitation_mm, record_version), ',' ORDER BY station_id, observed_at)) "
        "FROM ops.weather_observations"
    ).fetchone()
    assert row is not None
    return tuple(row)


def dead_letters(kafka: KafkaResource, topic: str) -> list[dict[str, str]]:
    consumer = KafkaConsumer(bootstrap_servers=kafka.bootstrap_servers, enable_auto_commit=False)
    try:
        tps = [
            TopicPartition(dlq_topic(topic), p) for p in consumer.partitions_for_topic(dlq_topic(topic)) or []
        ]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        out: list[dict[str, str]] = []
        while any(consumer.position(tp) < end[tp] for tp in tps):
            for records in consumer.poll(timeout_ms=1000).values():
                out += [{"value": r.value.decode(), **{k: v.decode() for k, v in r.headers}} for r in records]
        return out
    finally:
        consumer.close()


def test_ticks_and_runs_account_for_every_record_and_dead_letter_the_bad_ones(
    defs: dg.Definitions, kafka_resource: KafkaResource, pg_resource: PostgresResource, pg: psycopg.Connection
) -> None:
    kafka_resource.ensure_topics(partitions=1)
    topic = kafka_resource.topic(SOURCE)
    good = [observation("W1", minute) for minute in range(17)]
    produce(kafka_resource, {SOURCE: good[:10] + BAD + good[10:]})
    instance = dg.DagsterInstance.ephemeral()

    first = tick(defs, instance, kafka_resource, pg_resource, None)
    assert [r.run_key for r in first.run_requests or []] == [f"{topic}-0-0-20"]
    assert json.loads(first.cursor or "") == {"0": 20}
    run_all(defs, instance, first.run_requests or [])

    ledger = pg.execute(
        "SELECT origin, origin_ref, records_in, accepted, quarantined FROM ops.ingest_ledger WHERE source = %s",
        (SOURCE,),
    ).fetchall()
    assert ledger == [("kafka", f"{topic}-0-0-20", 20, 17, 3)]
    letters = dead_letters(kafka_resource, topic)
    assert sorted(d["value"] for d in letters) == sorted(BAD)
    assert sorted(int(d["offset"]) for d in letters) == [10, 11, 12]
    assert all(d["source_topic"] == topic and d["partition"] == "0" and d["reason"] for d in letters)
    assert {d["reason"].split(" ")[0] for d in letters} >= {"malformed:invalid_json"}
    # the producer's key rides along, so a letter can go back to its station; none when it had none
    assert {d["offset"]: d.get("source_key") for d in letters} == {"10": None, "11": "W9", "12": "W9"}

    quiet = tick(defs, instance, kafka_resource, pg_resource, first.cursor)
    assert not quiet.run_requests and "No new records" in (quiet.skip_message or "")
    with kafka_resource.consumer() as consumer:
        assert consumer.committed(TopicPartition(topic, 0)) == 20
    assert lag(first) == (20, {"0": 20})  # before the run: nothing committed
    assert lag(quiet) == (0, {"0": 0})  # after it: the commit shows as zero lag


def stations(conn: psycopg.Connection) -> dict[str, int]:
    rows = conn.execute(
        "SELECT station_id, count(*) FROM ops.weather_observations GROUP BY 1 ORDER BY 1"
    ).fetchall()
    return {str(station): int(n) for station, n in rows}


def test_records_of_aborted_or_open_transactions_are_not_ingested(
    defs: dg.Definitions, kafka_resource: KafkaResource, pg_resource: PostgresResource, pg: psycopg.Connection
) -> None:
    """A foreign transactional producer (Kafka Connect, Flink, a gateway with exactly-once) aborts a
    transaction: its records are in the log but were never written, and a transaction still open may
    yet abort. Only committed records are read; an open transaction holds the range back, not the run."""
    kafka_resource.ensure_topics(partitions=1)
    topic = kafka_resource.topic(SOURCE)
    producer = KafkaProducer(
        bootstrap_servers=kafka_resource.bootstrap_servers, transactional_id=f"{topic}-tx"
    )
    try:
        producer.init_transactions()
        for station, minutes, commit in (
            ("W1", range(5), True),
            ("WA", range(5), False),
            ("W1", range(5, 9), True),
        ):
            producer.begin_transaction()
            for minute in minutes:
                producer.send(topic, observation(station, minute).encode())
            producer.flush()
            if commit:
                producer.commit_transaction()
            else:
                producer.abort_transaction()
        producer.begin_transaction()  # left open while the next tick runs
        for minute in range(3):
            producer.send(topic, observation("WO", minute).encode())
        producer.flush()

        instance = dg.DagsterInstance.ephemeral()
        first = tick(defs, instance, kafka_resource, pg_resource, None)
        run_all(defs, instance, first.run_requests or [])
        assert stations(pg) == {"W1": 9}
        ledger = pg.execute("SELECT sum(records_in), sum(quarantined) FROM ops.ingest_ledger").fetchone()
        assert ledger == (9, 0)
        end = json.loads(first.cursor or "")["0"]  # before the open transaction: its first offset

        producer.commit_transaction()
        second = tick(defs, instance, kafka_resource, pg_resource, first.cursor)
        run_all(defs, instance, second.run_requests or [])
        assert stations(pg) == {"W1": 9, "WO": 3}
        assert json.loads(second.cursor or "")["0"] > end

        # A range that holds nothing but an aborted transaction (its records and its marker) is read
        # as empty, recorded and committed: it does not hold the partition up.
        producer.begin_transaction()
        for minute in range(2):
            producer.send(topic, observation("WB", minute).encode())
        producer.flush()
        producer.abort_transaction()
    finally:
        producer.close()
    third = tick(defs, instance, kafka_resource, pg_resource, second.cursor)
    (request,) = third.run_requests or []
    run_all(defs, instance, [request])
    assert stations(pg) == {"W1": 9, "WO": 3}
    ledger = pg.execute(
        "SELECT records_in, accepted, quarantined FROM ops.ingest_ledger WHERE origin_ref = %s",
        (request.run_key,),
    ).fetchall()
    assert ledger == [(0, 0, 0)]
    with kafka_resource.consumer() as consumer:
        assert consumer.committed(TopicPartition(topic, 0)) == json.loads(third.cursor or "")["0"]


def delete_below(kafka: KafkaResource, topic: str, offset: int) -> None:
    """Delete partition 0's records below `offset`, as retention does."""
    admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    try:
        admin.delete_records({TopicPartition(topic, 0): offset})
    finally:
        admin.close()


def test_offsets_retention_deleted_before_they_were_read_raise_an_alert_naming_them(
    defs: dg.Definitions, kafka_resource: KafkaResource, pg_resource: PostgresResource, pg: psycopg.Connection
) -> None:
    """Retention deletes a planned range before its run, and offsets past the cursor before the next
    tick: both losses are critical alerts with their offsets; what is still held is ingested."""
    kafka_resource.ensure_topics(partitions=1)
    topic = kafka_resource.topic(SOURCE)
    produce(kafka_resource, {SOURCE: [observation("W1", minute) for minute in range(10)]})
    instance = dg.DagsterInstance.ephemeral()
    first = tick(defs, instance, kafka_resource, pg_resource, None)
    assert [r.run_key for r in first.run_requests or []] == [f"{topic}-0-0-10"]
    produce(kafka_resource, {SOURCE: [observation("W2", minute) for minute in range(5)]})  # offsets 10..14
    delete_below(kafka_resource, topic, 12)  # as retention would: 0..11 are gone

    run_all(defs, instance, first.run_requests or [])  # its whole range was deleted: nothing to read
    second = tick(defs, instance, kafka_resource, pg_resource, first.cursor)
    assert [r.run_key for r in second.run_requests or []] == [f"{topic}-0-12-15"]
    run_all(defs, instance, second.run_requests or [])
    assert stations(pg) == {"W2": 3}
    lost = {
        a.dedup_key: (a.kind, a.severity, a.details["messages"])
        for a in list_alerts(pg, "open")
        if a.kind == "kafka_expired"
    }
    assert lost == {
        f"kafka_expired:{topic}:0@0-10": ("kafka_expired", "critical", 10),
        f"kafka_expired:{topic}:0@10-12": ("kafka_expired", "critical", 2),
    }
    ledger = pg.execute(
        "SELECT origin_ref, records_in FROM ops.ingest_ledger WHERE source = %s ORDER BY 1", (SOURCE,)
    ).fetchall()
    assert ledger == [(f"{topic}-0-0-10", 0), (f"{topic}-0-12-15", 3)]

    # A tick that finds nothing new after a loss still moves its cursor past it: reported once.
    produce(kafka_resource, {SOURCE: [observation("W3", minute) for minute in range(2)]})  # 15..16
    delete_below(kafka_resource, topic, 17)
    third = tick(defs, instance, kafka_resource, pg_resource, second.cursor)
    assert not third.run_requests and json.loads(third.cursor or "") == {"0": 17}
    fourth = tick(defs, instance, kafka_resource, pg_resource, third.cursor)
    assert not fourth.run_requests
    (alert,) = [a for a in list_alerts(pg, "open") if a.dedup_key.endswith("@15-17")]
    assert alert.occurrences == 1 and "offsets 15..16" in alert.summary

    # Re-running by hand a range ingested before, now deleted, would rewrite its ledger row from
    # nothing: refused, the row kept.
    with pytest.raises(RunFailedError, match=r"was ingested before \(3 records.*raw batch in the lake"):
        run_all(defs, instance, second.run_requests or [])
    assert pg.execute(
        "SELECT records_in FROM ops.ingest_ledger WHERE origin_ref = %s", (f"{topic}-0-12-15",)
    ).fetchone() == (3,)


def recreate(kafka: KafkaResource, topic: str) -> None:
    """Delete `topic` and create it again under the same name: its offsets count from 0 again."""
    admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    try:
        admin.delete_topics([topic])
        deadline = time.monotonic() + 30
        while True:
            try:
                admin.create_topics(
                    {topic: {"num_partitions": 1, "replication_factor": -1}}, wait_for_metadata=True
                )
                return
            except TopicAlreadyExistsError:  # still being deleted
                assert time.monotonic() < deadline, f"{topic} was not deleted within 30 s"
                time.sleep(0.2)
    finally:
        admin.close()


def test_a_topic_recreated_under_its_name_is_not_read_and_raises_an_alert(
    defs: dg.Definitions, kafka_resource: KafkaResource, pg_resource: PostgresResource, pg: psycopg.Connection
) -> None:
    """Its offsets restart at 0: read, they would reuse the old log's batch ids and versions."""
    kafka_resource.ensure_topics(partitions=1)
    topic = kafka_resource.topic(SOURCE)
    produce(kafka_resource, {SOURCE: [observation("W1", minute) for minute in range(10)]})
    instance = dg.DagsterInstance.ephemeral()
    first = tick(defs, instance, kafka_resource, pg_resource, None)
    run_all(defs, instance, first.run_requests or [])
    recreate(kafka_resource, topic)
    produce(kafka_resource, {SOURCE: [observation("W2", minute) for minute in range(3)]})

    for occurrences in (1, 2):  # every tick finds it so, and refreshes the one alert
        held = tick(defs, instance, kafka_resource, pg_resource, first.cursor)
        assert not held.run_requests
        assert "partitions 0 restarted, not read" in (held.skip_message or "")
        (alert,) = [a for a in list_alerts(pg, "open") if a.kind == "kafka_restarted"]
        assert (alert.dedup_key, alert.severity, alert.occurrences) == (
            f"kafka_restarted:{topic}:0",
            "critical",
            occurrences,
        )
        assert (alert.details["cursor"], alert.details["end_offset"]) == (10, 3)
    assert stations(pg) == {"W1": 10}


def lag(result: dg.SensorResult | dg.SkipReason) -> tuple[int, dict[str, int]]:
    """The consumer lag a tick reported as an observation of the raw asset."""
    events = getattr(result, "asset_events", None) or []
    (observation,) = [e for e in events if isinstance(e, dg.AssetObservation)]
    assert observation.asset_key == dg.AssetKey(f"raw_{SOURCE}")
    meta = observation.metadata
    return meta["consumer_lag"].value, meta["lag_by_partition"].value  # type: ignore[return-value]


def test_replaying_same_and_overlapping_ranges_changes_nothing(
    defs: dg.Definitions, kafka_resource: KafkaResource, pg_resource: PostgresResource, pg: psycopg.Connection
) -> None:
    kafka_resource.ensure_topics(partitions=1)
    topic = kafka_resource.topic(SOURCE)
    produce(kafka_resource, {SOURCE: [observation("W2", m, 5.0 + m) for m in range(12)] + BAD[:1]})
    instance = dg.DagsterInstance.ephemeral()
    first = tick(defs, instance, kafka_resource, pg_resource, None)
    run_all(defs, instance, first.run_requests or [])
    before = checksum(pg)
    assert before[0] == 12

    for rng in (OffsetRange(topic, 0, 0, 13), OffsetRange(topic, 0, 4, 9), OffsetRange(topic, 0, 8, 13)):
        execute_job(defs, JOB, instance, run_config=rng.run_config(SOURCE))
    assert checksum(pg) == before
    counts = pg.execute(
        "SELECT count(*), bool_and(records_in = accepted + quarantined) FROM ops.ingest_ledger WHERE source = %s",
        (SOURCE,),
    ).fetchone()
    assert counts == (3, True)  # the full range (replayed: one row) and the two overlapping ranges


def test_unreachable_broker_skips_the_tick_and_keeps_the_cursor(
    defs: dg.Definitions, pg_resource: PostgresResource
) -> None:
    down = KafkaResource(bootstrap_servers=f"127.0.0.1:{free_port()}", timeout_ms=2000)
    result = defs.resolve_sensor_def(SENSOR).evaluate_tick(
        dg.build_sensor_context(
            instance=dg.DagsterInstance.ephemeral(),
            cursor='{"0": 7}',
            resources={"kafka": down, "postgres": pg_resource},
        )
    )
    assert not result.run_requests
    assert "unreachable" in (result.skip_message or "")
    assert result.cursor in (None, '{"0": 7}')


def test_three_partitions_in_parallel_ranges_and_the_newer_version_wins(
    defs: dg.Definitions, kafka_resource: KafkaResource, pg_resource: PostgresResource, pg: psycopg.Connection
) -> None:
    kafka_resource.ensure_topics(partitions=3)
    stations = [f"S{i}" for i in range(9)]
    produce(kafka_resource, {SOURCE: [observation(s, m, 1.0) for s in stations for m in range(5)]})
    instance = dg.DagsterInstance.ephemeral()
    first = tick(defs, instance, kafka_resource, pg_resource, None)
    ranges = [OffsetRange.parse(r.tags["metrify/batch_id"]) for r in first.run_requests or []]
    assert sorted(r.partition for r in ranges) == [0, 1, 2]  # keyed by station: spread over partitions
    assert sum(r.end - r.start for r in ranges) == 45
    run_all(defs, instance, list(reversed(first.run_requests or [])))  # order between partitions is free

    produce(kafka_resource, {SOURCE: [observation("S3", 2, 21.5)]})  # S3's reading re-sent, corrected
    second = tick(defs, instance, kafka_resource, pg_resource, first.cursor)
    assert len(second.run_requests or []) == 1
    run_all(defs, instance, second.run_requests or [])
    older = next(r for r in ranges if r.partition == OffsetRange.parse(second.run_requests[0].tags["metrify/batch_id"]).partition)  # fmt: skip
    execute_job(defs, JOB, instance, run_config=older.run_config(SOURCE))  # replaying the old range

    rows = pg.execute(
        "SELECT count(*), max(temperature_c) FILTER (WHERE station_id = 'S3' AND observed_at = '2026-03-29T10:02:00Z') "
        "FROM ops.weather_observations"
    ).fetchone()
    assert rows == (45, 21.5)


def test_a_range_whose_runs_all_failed_is_requested_again(
    defs: dg.Definitions,
    kafka_resource: KafkaResource,
    pg_resource: PostgresResource,
    pg: psycopg.Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kafka_resource.ensure_topics(partitions=1)
    produce(kafka_resource, {SOURCE: [observation("W5", m) for m in range(4)]})
    instance = dg.DagsterInstance.ephemeral()
    first = tick(defs, instance, kafka_resource, pg_resource, None)
    [request] = first.run_requests or []

    # The database is down for the first run (the URL is an EnvVar, read when the run starts).
    monkeypatch.setenv("METRIFY_POSTGRES_URL", "postgresql://metrify@127.0.0.1:1/unreachable")
    with pytest.raises(RunFailedError):
        execute_job(defs, JOB, instance, run_config=dict(request.run_config), tags=request.tags)
    monkeypatch.setenv("METRIFY_POSTGRES_URL", pg_resource.get_url())

    retry = tick(defs, instance, kafka_resource, pg_resource, first.cursor)
    assert [r.run_key for r in retry.run_requests or []] == [f"{request.run_key}-retry-1"]
    run_all(defs, instance, retry.run_requests or [])
    assert not tick(defs, instance, kafka_resource, pg_resource, first.cursor).run_requests
    assert pg.execute("SELECT records_in, accepted FROM ops.ingest_ledger").fetchall() == [(4, 4)]


def test_a_range_that_fails_again_waits_before_its_next_request_but_not_for_a_drain(
    defs: dg.Definitions,
    kafka_resource: KafkaResource,
    pg_resource: PostgresResource,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The sensor requests a failed range again at once, then after a growing wait (a range failing
    every time is not a failed run per tick); `metrify kafka drain` (no clock) requests it at once."""
    kafka_resource.ensure_topics(partitions=1)
    produce(kafka_resource, {SOURCE: [observation("W6", m) for m in range(2)]})
    instance = dg.DagsterInstance.ephemeral()
    contract = contract_for(SOURCE)
    first = tick(defs, instance, kafka_resource, pg_resource, None)
    [request] = first.run_requests or []
    monkeypatch.setenv("METRIFY_POSTGRES_URL", "postgresql://metrify@127.0.0.1:1/unreachable")
    with pytest.raises(RunFailedError):
        execute_job(defs, JOB, instance, run_config=dict(request.run_config), tags=request.tags)
    [retry] = tick(defs, instance, kafka_resource, pg_resource, first.cursor).run_requests or []
    with pytest.raises(RunFailedError):  # the second failure
        execute_job(defs, JOB, instance, run_config=dict(retry.run_config), tags=retry.tags)
    failed_at = datetime.now(UTC)

    held = kafka_tick(contract, instance, first.cursor, kafka_resource, pg_resource, failed_at)
    assert isinstance(held, dg.SensorResult) and not held.run_requests
    assert held.skip_reason is not None
    assert "1 failed batch(es) wait to be requested again" in (held.skip_reason.skip_message or "")
    assert "(2 failed runs)" in (held.skip_reason.skip_message or "")
    later = kafka_tick(
        contract,
        instance,
        first.cursor,
        kafka_resource,
        pg_resource,
        failed_at + timedelta(minutes=1, seconds=1),
    )
    assert [r.run_key for r in later.run_requests or []] == [f"{request.run_key}-retry-2"]
    drain = kafka_tick(contract, instance, first.cursor, kafka_resource, pg_resource, None)
    assert [r.run_key for r in drain.run_requests or []] == [f"{request.run_key}-retry-2"]


CRASHING_RUN = """
import json, sys
import dagster as dg
from metrify_assets.definitions import defs
from metrify_assets.orchestration.instance import execute_job
execute_job(defs(), sys.argv[1], dg.DagsterInstance.ephemeral(), run_config=json.loads(sys.argv[2]))
"""


def test_a_run_killed_after_the_lake_write_loses_and_doubles_nothing_when_retried(
    defs: dg.Definitions,
    kafka_resource: KafkaResource,
    pg_resource: PostgresResource,
    pg: psycopg.Connection,
    tmp_path: Path,
) -> None:
    """A real crash: the run process is SIGKILLed while its upsert waits on a lock, after its raw write."""
    kafka_resource.ensure_topics(partitions=1)
    topic = kafka_resource.topic(SOURCE)
    produce(kafka_resource, {SOURCE: [observation("W7", m) for m in range(15)]})
    rng = OffsetRange(topic, 0, 0, 15)

    def raw_files() -> list[Path]:
        return list((tmp_path / "lake" / "raw" / SOURCE).glob(f"dt=*/{rng.batch_id}.jsonl.gz"))

    with psycopg.connect(pg_resource.get_url()) as blocker:
        blocker.execute("LOCK TABLE ops.weather_observations IN ACCESS EXCLUSIVE MODE")
        run = subprocess.Popen([sys.executable, "-c", CRASHING_RUN, JOB, json.dumps(rng.run_config(SOURCE))])
        try:
            deadline = time.monotonic() + 180
            while not raw_files() or not _waiting_on_lock(pg):
                assert run.poll() is None, "the run ended before it reached the database"
                assert time.monotonic() < deadline, "the run never wrote its raw batch and reached the upsert"
                time.sleep(0.2)
        finally:
            run.send_signal(signal.SIGKILL)
            run.wait(timeout=30)
        blocker.rollback()

    assert pg.execute("SELECT count(*) FROM ops.weather_observations").fetchone() == (0,)
    assert pg.execute("SELECT count(*) FROM ops.ingest_ledger").fetchone() == (0,)
    with kafka_resource.consumer() as consumer:
        assert consumer.committed(TopicPartition(topic, 0)) is None

    instance = dg.DagsterInstance.ephemeral()
    for _ in range(2):  # the retry, and one more replay for good measure
        execute_job(defs, JOB, instance, run_config=rng.run_config(SOURCE))
        assert checksum(pg)[0] == 15
    assert pg.execute("SELECT records_in, accepted, quarantined FROM ops.ingest_ledger").fetchall() == [
        (15, 15, 0)
    ]
    assert len(raw_files()) == 1
    with kafka_resource.consumer() as consumer:
        assert consumer.committed(TopicPartition(topic, 0)) == 15


def _waiting_on_lock(conn: psycopg.Connection) -> bool:
    row = conn.execute("SELECT count(*) FROM pg_locks WHERE NOT granted").fetchone()
    conn.commit()
    return bool(row and row[0])


def test_a_drain_goes_on_past_a_range_that_fails_and_reports_it(
    defs: dg.Definitions,
    kafka_resource: KafkaResource,
    pg_resource: PostgresResource,
    pg: psycopg.Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from metrify_assets.ingestion import assets
    from metrify_assets.orchestration.drain import drain

    kafka_resource.ensure_topics(partitions=3)
    produce(kafka_resource, {SOURCE: [observation(f"S{i}", m) for i in range(9) for m in range(2)]})
    original = assets.read_batch

    def broken_on_partition_1(kafka: KafkaResource, contract: object, rng: OffsetRange) -> object:
        if rng.partition == 1:
            raise KeyError("a bug that only partition 1's records reach")
        return original(kafka, contract, rng)  # type: ignore[arg-type]

    monkeypatch.setattr(assets, "read_batch", broken_on_partition_1)
    summary = drain(defs, dg.DagsterInstance.ephemeral(), kafka_resource, pg_resource, sources=[SOURCE])
    [(failed, error)] = summary.failed.items()
    assert OffsetRange.parse(failed).partition == 1 and "KeyError" in error
    assert summary.batches == 2  # partitions 0 and 2 were still ingested
    stored = pg.execute("SELECT count(*) FROM ops.weather_observations").fetchone()
    assert stored == (summary.accepted,) and summary.accepted > 0


def test_a_drain_names_the_topics_it_found_missing_and_the_sources_it_could_not_read(
    defs: dg.Definitions, kafka_resource: KafkaResource, pg_resource: PostgresResource
) -> None:
    from metrify_assets.orchestration.drain import drain

    instance = dg.DagsterInstance.ephemeral()
    fresh = drain(defs, instance, kafka_resource, pg_resource, sources=[SOURCE])  # nothing produced yet
    assert (fresh.batches, fresh.unread, fresh.no_topic) == (0, {}, [kafka_resource.topic(SOURCE)])
    down = KafkaResource(bootstrap_servers=f"127.0.0.1:{free_port()}", timeout_ms=2000)
    summary = drain(defs, instance, down, pg_resource, sources=[SOURCE, "meter_readings"])
    assert summary.batches == 0 and summary.no_topic == []
    assert sorted(summary.unread) == ["meter_readings", SOURCE]
    assert all(f"Kafka at {down.bootstrap_servers} is unreachable" in e for e in summary.unread.values())


def test_a_run_that_failed_after_its_commit_is_requested_again_until_its_dead_letters_are_sent(
    defs: dg.Definitions,
    kafka_resource: KafkaResource,
    pg_resource: PostgresResource,
    pg: psycopg.Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from metrify_assets.ingestion import assets

    kafka_resource.ensure_topics(partitions=1)
    topic = kafka_resource.topic(SOURCE)
    produce(kafka_resource, {SOURCE: [observation("W6", m) for m in range(5)] + BAD[:1]})
    instance = dg.DagsterInstance.ephemeral()
    first = tick(defs, instance, kafka_resource, pg_resource, None)
    [request] = first.run_requests or []

    def dlq_refused(*args: object) -> int:
        raise KeyError("the DLQ topic is not allowed for this client")

    original = assets.dead_letter
    monkeypatch.setattr(assets, "dead_letter", dlq_refused)
    with pytest.raises(RunFailedError):
        execute_job(defs, JOB, instance, run_config=dict(request.run_config), tags=request.tags)
    monkeypatch.setattr(assets, "dead_letter", original)  # the ACL fixed
    assert pg.execute("SELECT records_in, delivered_at IS NULL FROM ops.ingest_ledger").fetchall() == [
        (6, True)
    ]
    pg.commit()

    retry = tick(defs, instance, kafka_resource, pg_resource, first.cursor)
    assert [r.run_key for r in retry.run_requests or []] == [f"{request.run_key}-retry-1"]
    run_all(defs, instance, retry.run_requests or [])
    assert [d["value"] for d in dead_letters(kafka_resource, topic)] == BAD[:1]
    assert not tick(defs, instance, kafka_resource, pg_resource, first.cursor).run_requests


def test_messages_produced_as_a_backfill_are_not_scored_for_timeliness(
    defs: dg.Definitions, kafka_resource: KafkaResource, pg_resource: PostgresResource, pg: psycopg.Connection
) -> None:
    """Old observations (2026-03-29) arriving now: late as a live feed, not late when declared history."""
    kafka_resource.ensure_topics(partitions=1)
    topic = kafka_resource.topic(SOURCE)
    produce(kafka_resource, {SOURCE: [observation("W3", m) for m in range(3)]})
    produce(kafka_resource, {SOURCE: [observation("W4", m) for m in range(3)]}, backfill=True)
    batch = read_batch(kafka_resource, contract_for(SOURCE), OffsetRange(topic, 0, 0, 6))
    assert batch.backfill == [False] * 3 + [True] * 3
    instance = dg.DagsterInstance.ephemeral()
    for rng in (OffsetRange(topic, 0, 0, 3), OffsetRange(topic, 0, 3, 6)):
        execute_job(defs, JOB, instance, run_config=rng.run_config(SOURCE))
    rows = pg.execute(
        "SELECT origin_ref, backfill_records, timeliness FROM ops.ingest_ledger ORDER BY origin_ref"
    ).fetchall()
    assert rows == [
        (OffsetRange(topic, 0, 0, 3).batch_id, 0, 0.0),
        (OffsetRange(topic, 0, 3, 6).batch_id, 3, None),
    ]
    (standing,) = list_alerts(pg, "open")  # only the live batch was late (and history does not clear it)
    assert (standing.dedup_key, standing.details["batch_id"]) == (
        f"quality:{SOURCE}",
        OffsetRange(topic, 0, 0, 3).batch_id,
    )


def test_a_parallel_drain_ingests_every_range_once_in_forked_workers(
    defs: dg.Definitions,
    kafka_resource: KafkaResource,
    pg_resource: PostgresResource,
    pg: psycopg.Connection,
    tmp_path: Path,
) -> None:
    from metrify_assets.orchestration.drain import drain

    kafka_resource.ensure_topics(partitions=3)
    good = [observation(f"P{i}", m) for i in range(12) for m in range(3)]
    produce(kafka_resource, {SOURCE: good + BAD})
    with pytest.raises(ValueError, match="persistent"):
        drain(defs, dg.DagsterInstance.ephemeral(), kafka_resource, pg_resource, [SOURCE], workers=2)
    with dg.DagsterInstance.local_temp(str(tmp_path)) as instance:
        summary = drain(defs, instance, kafka_resource, pg_resource, [SOURCE], workers=2, trigger="demo")
        runs = instance.get_run_records(dg.RunsFilter(statuses=[dg.DagsterRunStatus.SUCCESS]))
    assert not summary.failed
    assert summary.batches == 3  # one range per partition
    assert {r.dagster_run.tags[TRIGGER_TAG] for r in runs} == {"demo"}  # what asked for the drain
    assert summary.records == len(good) + len(BAD)
    assert (summary.accepted, summary.quarantined) == (len(good), len(BAD))
    assert pg.execute(
        "SELECT count(*) FROM ops.weather_observations WHERE station_id LIKE 'P%'"
    ).fetchone() == (len(good),)
    ledger = pg.execute("SELECT run_id FROM ops.ingest_ledger WHERE source = %s", (SOURCE,)).fetchall()
    assert sorted(r[0] for r in ledger) == sorted(r.dagster_run.run_id for r in runs)  # one run a range


def test_a_parallel_drain_cuts_the_range_that_would_run_alone_between_its_workers(
    defs: dg.Definitions,
    kafka_resource: KafkaResource,
    pg_resource: PostgresResource,
    pg: psycopg.Connection,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from metrify_assets.ingestion.kafka import ranges
    from metrify_assets.orchestration.drain import drain

    monkeypatch.setattr(ranges, "MIN_PART_RECORDS", 2)  # these partitions hold a dozen records
    kafka_resource.ensure_topics(partitions=3)
    good = [observation(f"Q{i}", m) for i in range(12) for m in range(3)]
    produce(kafka_resource, {SOURCE: good + BAD})
    with dg.DagsterInstance.local_temp(str(tmp_path)) as instance:
        summary = drain(defs, instance, kafka_resource, pg_resource, sources=[SOURCE], workers=2)
    assert not summary.failed
    batches = [OffsetRange.parse(b) for (b,) in pg.execute("SELECT batch_id FROM ops.ingest_ledger")]
    assert summary.batches == len(batches) == 4  # two partitions whole, the shortest in halves
    cut = [r for r in batches if sum(o.partition == r.partition for o in batches) == 2]
    first, second = sorted(cut, key=lambda r: r.start)
    assert first.end == second.start and second.size - first.size in (0, 1)
    assert summary.records == len(good) + len(BAD)
    assert (summary.accepted, summary.quarantined) == (len(good), len(BAD))
    assert pg.execute(
        "SELECT count(*) FROM ops.weather_observations WHERE station_id LIKE 'Q%'"
    ).fetchone() == (len(good),)
    # Every partition's commit is read back, in one request for all of them.
    _, end, _ = topic_offsets(kafka_resource, kafka_resource.topic(SOURCE))
    assert len(end) == 3 and topic_offsets(kafka_resource, kafka_resource.topic(SOURCE)).committed == end


def test_commits_of_one_partition_take_turns_and_never_move_the_offset_back(
    kafka_resource: KafkaResource, pg_resource: PostgresResource
) -> None:
    kafka_resource.ensure_topics(partitions=1)
    produce(kafka_resource, {SOURCE: [observation("C", m) for m in range(10)]})
    topic = kafka_resource.topic(SOURCE)
    lower, upper = OffsetRange(topic, 0, 0, 5), OffsetRange(topic, 0, 5, 10)

    def commit(rng: OffsetRange) -> None:
        with pg_resource.connect() as conn:
            commit_range(kafka_resource, rng, conn)

    with pg_resource.connect() as holder:  # another run of the partition, between its read and commit
        lock_partition(holder, upper)
        waiting = threading.Thread(target=commit, args=(upper,))
        waiting.start()
        waiting.join(1.0)
        assert waiting.is_alive(), "the commit waits for the partition's lock"
        assert topic_offsets(kafka_resource, topic).committed == {}
    waiting.join(30)
    assert not waiting.is_alive()
    assert topic_offsets(kafka_resource, topic).committed == {0: 10}
    commit(lower)  # the lower range ends last: the offset stays where the upper one put it
    assert topic_offsets(kafka_resource, topic).committed == {0: 10}


def test_the_drain_freezes_the_imported_heap_only_while_runs_execute() -> None:
    from metrify_assets.orchestration.drain import frozen_heap

    before = gc.get_freeze_count()
    with frozen_heap():
        frozen = gc.get_freeze_count()
        assert frozen > before  # what was imported is out of the collector's walks
        garbage = [[]]
        garbage[0].append(garbage)  # a cycle made meanwhile is still collected
        del garbage
        assert gc.collect() > 0
    assert gc.get_freeze_count() == 0  # everything collectable again afterwards
