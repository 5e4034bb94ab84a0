"""Services going away in the middle of work, then coming back: PostgreSQL restarted under a run, the
lake (an S3 endpoint) unreachable, the Kafka broker restarted mid-drain.

Each is a system error: the step's RetryPolicy (exponential backoff with jitter) retries it, so the
run succeeds once the service is back, and the result equals the clean run's.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import boto3
import dagster as dg
import psycopg
import pytest
from kafka import TopicPartition
from moto.server import ThreadedMotoServer

from metrify_assets.definitions import defs as load_defs
from metrify_assets.ingestion.kafka.produce import produce
from metrify_assets.ingestion.landing import land_lines
from metrify_assets.ingestion.sensors import landing_run_config
from metrify_assets.orchestration.drain import drain
from metrify_assets.orchestration.instance import execute_job
from metrify_assets.resources import PostgresResource
from metrify_assets.resources.kafka import KafkaResource
from metrify_assets.storage.embedded_server import embedded_postgres_url, stop_embedded
from metrify_assets.storage.migrate import migrate, truncate_ops
from metrify_platform.kafka_broker import KafkaBroker, free_port
from tests.faults.conftest import assert_ledger_balances, dead_letters, table_checksum

pytestmark = [pytest.mark.faults, pytest.mark.postgres]
SOURCE = "weather_observations"
JOB = f"ingest_{SOURCE}_job"
FaultLog = Callable[[str, str, float, list[str]], None]


def observation(station: str, minute: int) -> str:
    return json.dumps(
        {"station_id": station, "observed_at": f"2026-03-29T{minute // 60:02d}:{minute % 60:02d}:00Z",
         "temperature_c": 5 + minute % 9, "humidity_pct": 80, "pressure_hpa": 1012, "wind_speed_ms": 3.2,
         "precipitation_mm": 0}
    )  # fmt: skip


MESSAGES = [observation(f"W{i % 4}", i) for i in range(40)] + ["{torn"]


class Run(threading.Thread):
    """A job run in a thread, so the test can take a service down under it."""

    def __init__(self, defs: dg.Definitions, run_config: dict[str, object]) -> None:
        super().__init__(daemon=True)
        self.defs, self.run_config = defs, run_config
        self.result: dg.JobExecutionResult | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:  # the instance is disposed of in this thread, which made its SQLite connections
            with dg.DagsterInstance.ephemeral() as instance:
                self.result = execute_job(self.defs, JOB, instance, run_config=self.run_config)
        except BaseException as err:  # noqa: BLE001 - reported by the test's assertion below
            self.error = err

    def outcome(self, timeout: float = 180.0) -> dg.JobExecutionResult:
        self.join(timeout)
        assert not self.is_alive(), "the run did not finish"
        assert self.error is None, f"the run failed: {self.error}"
        assert self.result is not None
        return self.result


def restarts(result: dg.JobExecutionResult) -> int:
    return sum(e.event_type == dg.DagsterEventType.STEP_RESTARTED for e in result.all_events)


def test_postgres_stopped_and_restarted_mid_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault_log: FaultLog
) -> None:
    """The server shuts down while the run's transaction waits on a lock: the transaction is lost,
    the step retries, and the run completes once PostgreSQL is back."""
    data_dir = tmp_path / "pg"
    url = embedded_postgres_url(str(data_dir))
    try:
        with psycopg.connect(url) as conn:
            migrate(conn)
        monkeypatch.setenv("METRIFY_HOME", str(tmp_path))
        monkeypatch.setenv("METRIFY_POSTGRES_URL", url)
        defs = load_defs()
        run_config = landing_run_config(SOURCE, land_lines(tmp_path / "landing", SOURCE, MESSAGES))
        with psycopg.connect(url) as conn:
            clean_run = Run(defs, run_config)
            clean_run.start()
            clean_run.outcome()
            clean = table_checksum(conn, SOURCE)
            truncate_ops(conn)

        blocker = psycopg.connect(url)
        blocker.execute("LOCK TABLE ops.weather_observations IN ACCESS EXCLUSIVE MODE")
        run = Run(defs, run_config)
        run.start()
        deadline = time.monotonic() + 120
        while not blocker.execute("SELECT count(*) FROM pg_locks WHERE NOT granted").fetchone()[0]:  # type: ignore[index]
            assert time.monotonic() < deadline, "the run never reached its upsert"
            time.sleep(0.1)
        down_at = time.monotonic()
        stop_embedded(data_dir)  # fast shutdown: every session ends, the run's transaction with it
        time.sleep(2.0)  # the outage
        assert embedded_postgres_url(str(data_dir)) == url  # back, at the same address
        result = run.outcome()
        recovered = time.monotonic() - down_at
        assert restarts(result) >= 1
        with psycopg.connect(url) as conn:
            assert table_checksum(conn, SOURCE) == clean
            held = assert_ledger_balances(conn, len(MESSAGES))
        fault_log(
            "PostgreSQL stopped mid-upsert for 2 s, then restarted",
            f"step retried with backoff ({restarts(result)} restarts)",
            recovered,
            [*held, "checksum = clean run"],
        )
    finally:
        stop_embedded(data_dir)


def test_the_lake_unreachable_then_back(
    tmp_path: Path,
    pg_resource: PostgresResource,
    pg: psycopg.Connection,
    monkeypatch: pytest.MonkeyPatch,
    fault_log: FaultLog,
) -> None:
    """The S3 endpoint (moto server) refuses connections for 3 s while a run writes its raw batch."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    for key, value in {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "METRIFY_HOME": str(tmp_path),
        "METRIFY_POSTGRES_URL": pg_resource.get_url(),
        "METRIFY_LAKE_URL": "s3://metrify-lake/lake",
    }.items():
        monkeypatch.setenv(key, value)
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="metrify-lake")
    try:
        defs = load_defs()
        run_config = landing_run_config(SOURCE, land_lines(tmp_path / "landing", SOURCE, MESSAGES))
        clean_run = Run(defs, run_config)
        clean_run.start()
        clean_run.outcome()
        clean = table_checksum(pg, SOURCE)
        truncate_ops(pg)
        for obj in s3.list_objects_v2(Bucket="metrify-lake").get("Contents", []):
            s3.delete_object(Bucket="metrify-lake", Key=obj["Key"])  # so the raw batch is written again

        server.stop()
        down_at = time.monotonic()
        run = Run(defs, run_config)
        run.start()
        time.sleep(3.0)  # the outage
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
        server.start()
        if "metrify-lake" not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
            s3.create_bucket(Bucket="metrify-lake")
        result = run.outcome()
        recovered = time.monotonic() - down_at
        assert restarts(result) >= 1
        assert table_checksum(pg, SOURCE) == clean
        held = assert_ledger_balances(pg, len(MESSAGES))
        raw = s3.list_objects_v2(Bucket="metrify-lake", Prefix=f"lake/raw/{SOURCE}/").get("KeyCount", 0)
        assert raw == 1
        fault_log(
            "lake (S3 endpoint) unreachable for 3 s",
            f"step retried with backoff ({restarts(result)} restarts)",
            recovered,
            [*held, "checksum = clean run", "raw written once"],
        )
    finally:
        server.stop()


@pytest.mark.kafka
def test_the_broker_stopped_and_restarted_mid_drain(
    tmp_path: Path,
    pg_resource: PostgresResource,
    pg: psycopg.Connection,
    monkeypatch: pytest.MonkeyPatch,
    fault_log: FaultLog,
) -> None:
    """After the first range of a drain, the broker goes down (controlled shutdown) and comes back
    with its data: the following ranges wait in their retries, or fail and are planned again."""
    broker = KafkaBroker(data_dir=tmp_path / "kafka")
    broker.start()
    try:
        kafka = KafkaResource(
            bootstrap_servers=broker.bootstrap_servers, group_id="outage-ingest", timeout_ms=5000
        )
        monkeypatch.setenv("METRIFY_HOME", str(tmp_path))
        monkeypatch.setenv("METRIFY_POSTGRES_URL", pg_resource.get_url())
        monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", broker.bootstrap_servers)
        monkeypatch.setenv("METRIFY_KAFKA_GROUP_ID", kafka.group_id)
        kafka.ensure_topics(partitions=3)
        produce(kafka, {SOURCE: MESSAGES})
        defs, instance = load_defs(), dg.DagsterInstance.ephemeral()
        restarted = threading.Event()

        def restart() -> None:
            broker.stop()
            time.sleep(2.0)  # the outage
            broker.start()
            restarted.set()

        outage: list[threading.Thread] = []

        def first_range_done(batch_id: str) -> None:
            if not outage:
                outage.append(threading.Thread(target=restart, daemon=True))
                outage[0].start()

        down_at = time.monotonic()
        failed_ranges = 0
        for _ in range(4):
            summary = drain(defs, instance, kafka, pg_resource, sources=[SOURCE], on_batch=first_range_done)
            failed_ranges += len(summary.failed)  # retries spent while the broker was down: re-drained
            restarted.wait(120)
            with kafka.consumer() as consumer:
                topic = kafka.topic(SOURCE)
                committed = sum(consumer.committed(TopicPartition(topic, p)) or 0 for p in range(3))
            if committed == len(MESSAGES):
                break
        recovered = time.monotonic() - down_at
        assert committed == len(MESSAGES)
        rows = pg.execute(
            "SELECT station_id, observed_at::text, temperature_c FROM ops.weather_observations"
        ).fetchall()
        expected = {
            (m["station_id"], m["observed_at"], m["temperature_c"]) for m in map(json.loads, MESSAGES[:-1])
        }
        assert len(rows) == len(expected)
        assert {(s, t.replace(" ", "T").replace("+00", "Z"), v) for s, t, v in rows} == expected
        held = assert_ledger_balances(pg, len(MESSAGES))
        quarantined = pg.execute("SELECT count(*) FROM ops.quarantine").fetchone()
        assert quarantined == (len({h["offset"] for _, h in dead_letters(kafka, SOURCE)}),) == (1,)
        fault_log(
            "Kafka broker stopped after the first range of a drain, restarted 2 s later",
            f"reads retried with backoff; {failed_ranges} ranges failed and were drained again",
            recovered,
            [*held, "table = what was produced", "DLQ = quarantine", "offsets committed to the end"],
        )
    finally:
        broker.stop()
