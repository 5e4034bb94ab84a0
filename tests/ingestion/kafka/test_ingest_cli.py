"""`metrify ingest SOURCE PATH --to kafka`: the file's records reach the topic, one message each,
keyed by meter, declared a backfill; without Kafka configured or reachable it says so and sends nothing."""

from __future__ import annotations

import socket
from collections import defaultdict
from pathlib import Path

import orjson
import pytest
import typer
from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from typer.testing import CliRunner

from metrify_assets.cli import ingest
from metrify_assets.contracts import contract_for
from metrify_assets.ingestion.decode import decode
from metrify_assets.resources.kafka import KafkaResource
from metrify_assets.serving.schemas import validate

METERS = ("M-1", "M-2", "M-3")
STARTS = [f"2026-03-28T{h:02d}:{m:02d}:00+00:00" for h in (0, 1) for m in (0, 15)]
MAPPING = ["--map", "meter_id=meter", "--map", "reading_start=start", "--map", "energy_kwh=kwh"]


def cli() -> typer.Typer:
    app = typer.Typer()
    ingest.register(app)

    @app.callback()
    def main() -> None:
        """Keeps `ingest` a subcommand."""

    return app


def export_csv(tmp_path: Path) -> Path:
    path = tmp_path / "export.csv"
    rows = [f"{meter},{start},{0.1 * (i + 1):.1f}" for meter in METERS for i, start in enumerate(STARTS)]
    path.write_text("meter,start,kwh\n" + "\n".join(rows) + "\n")
    return path


def read_topic(kafka: KafkaResource, topic: str) -> list[ConsumerRecord]:
    """Every message in the topic, from the start of each partition to its end now."""
    consumer = KafkaConsumer(**kafka.client_config(), enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)
        got: list[ConsumerRecord] = []
        while any(consumer.position(tp) < end[tp] for tp in partitions):
            for batch in consumer.poll(timeout_ms=1000).values():
                got.extend(batch)
        return got
    finally:
        consumer.close()


@pytest.mark.kafka
def test_ingest_to_kafka_sends_every_record_keyed_by_meter(
    kafka_resource: KafkaResource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("METRIFY_HOME", str(tmp_path))
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_resource.bootstrap_servers)
    topic = kafka_resource.topic("meter_readings")
    args = ["ingest", "meter_readings", str(export_csv(tmp_path)), *MAPPING, "--set", "interval_minutes=15"]

    result = CliRunner().invoke(cli(), [*args, "--to", "kafka", "--topic", topic])

    assert result.exit_code == 0, result.output
    assert f"sent 12 messages to {topic}" in result.output
    messages = read_topic(kafka_resource, topic)
    assert len(messages) == len(METERS) * len(STARTS)
    by_key: dict[bytes, list[ConsumerRecord]] = defaultdict(list)
    for message in messages:
        by_key[message.key].append(message)
    assert sorted(by_key) == [m.encode() for m in METERS]
    for meter, sent in by_key.items():
        assert len({m.partition for m in sent}) == 1  # one meter, one partition: its order holds
        records = [orjson.loads(m.value) for m in sorted(sent, key=lambda m: m.offset)]
        assert [r["meter_id"] for r in records] == [meter.decode()] * len(STARTS)
        assert [r["reading_start"] for r in records] == STARTS
    assert all(("metrify-backfill", b"1") in m.headers for m in messages)  # an import is history
    values = [m.value for m in messages]
    assert [validate("meter_readings", orjson.loads(v)) for v in values] == [[]] * len(values)
    assert decode(contract_for("meter_readings"), values, [1] * len(values)).malformed == []
    assert not (tmp_path / "landing").exists()  # sent, not landed


def test_without_kafka_configured_it_says_what_to_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("METRIFY_HOME", str(tmp_path))
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    args = ["ingest", "meter_readings", str(export_csv(tmp_path)), *MAPPING, "--set", "interval_minutes=15"]
    result = CliRunner().invoke(cli(), [*args, "--to", "kafka"])
    assert result.exit_code == 2
    assert "KAFKA_BOOTSTRAP_SERVERS" in result.output
    assert not (tmp_path / "landing").exists()


def test_an_unreachable_broker_is_an_error_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{probe.getsockname()[1]}"
    monkeypatch.setenv("METRIFY_HOME", str(tmp_path))
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", closed)
    args = ["ingest", "meter_readings", str(export_csv(tmp_path)), *MAPPING, "--set", "interval_minutes=15"]
    result = CliRunner().invoke(cli(), [*args, "--to", "kafka"])
    assert result.exit_code == 1
    assert f"could not send to Kafka at {closed}" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_bad_destinations_are_refused(tmp_path: Path) -> None:
    args = ["ingest", "meter_readings", str(export_csv(tmp_path)), *MAPPING, "--set", "interval_minutes=15"]
    for extra, hint in ((["--to", "s3"], "--to"), (["--topic", "t"], "--topic")):
        result = CliRunner().invoke(cli(), [*args, "--landing-dir", str(tmp_path), *extra])
        assert result.exit_code == 2 and hint in result.output, extra
    assert not list(tmp_path.glob("meter_readings/*"))


def test_help_tells_both_destinations() -> None:
    result = CliRunner().invoke(cli(), ["ingest", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for text in ("--to", "--topic", "KAFKA_BOOTSTRAP_SERVERS", "idempotent"):
        assert text in result.output, text
