"""The API's requests to Kafka: one message per meter (grid node, station), keyed by it, so each owner's
record versions are offsets of one partition whatever the request mixed."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import orjson
import psycopg
from fastapi.testclient import TestClient

from metrify_assets.observability import audit
from metrify_assets.resources import PostgresResource
from metrify_assets.resources.kafka import KafkaResource
from metrify_assets.serving.app import create_app
from metrify_assets.serving.kafka import KafkaSender
from tests.ingestion.kafka.test_ingest_cli import read_topic
from tests.serving.test_api import drain_readings, kafka_settings, recent, token


def _messages(kafka: KafkaResource, topic: str) -> list[tuple[int, int, bytes | None, dict]]:
    """Every message of the topic as (partition, offset, key, parsed value)."""
    found = [(r.partition, r.offset, r.key, orjson.loads(r.value)) for r in read_topic(kafka, topic)]
    return sorted(found, key=lambda m: m[:2])


def test_a_request_of_many_meters_is_one_message_per_meter_and_versions_are_its_partitions_offsets(
    kafka_defs: dg.Definitions,
    kafka_resource: KafkaResource,
    pg_resource: PostgresResource,
    tmp_path: Path,
) -> None:
    kafka_resource.ensure_topics(partitions=3)
    meters = [f"MTR-KEYS-{n}" for n in range(6)]
    readings = [  # interleaved: no two neighbours share a meter
        {"meter_id": m, "reading_start": recent(2, 15 * slot), "interval_minutes": 15, "energy_kwh": 0.25}
        for slot in range(3)
        for m in meters
    ]
    app = create_app(kafka_settings(tmp_path, pg_resource, kafka_resource))
    with TestClient(app) as api, kafka_resource.producer() as producer:
        app.state.sender = KafkaSender(kafka_resource, producer)
        posted = api.post("/v1/meter_readings", json={"records": readings}, headers=token("ingest"))
        assert posted.status_code == 202
        batch = posted.json()["data"]
        sent = _messages(kafka_resource, kafka_resource.topic("meter_readings"))
        assert len(sent) == len(meters)
        where: dict[str, tuple[int, int]] = {}
        for partition, offset, key, value in sent:
            owners = {r["meter_id"] for r in value["records"]}
            assert owners == {key.decode() if key else None} and len(value["records"]) == 3
            where[key.decode() if key else ""] = (partition, offset)
        assert sorted(where) == meters
        assert batch["records"] == 18 and len(batch["kafka"]["messages"]) == len(meters)
        assert {(m["partition"], m["offset"], m["records"]) for m in batch["kafka"]["messages"]} == {
            (*where[m], 3) for m in meters
        }
        assert (batch["kafka"]["partition"], batch["kafka"]["offset"]) == where[meters[0]]
        drain_readings(kafka_defs, kafka_resource, pg_resource)
        done = api.get(posted.headers["location"], headers=token("ingest")).json()["data"]
    assert done["status"] == "processed" and (done["accepted"], done["quarantined"]) == (18, 0)
    assert all(m["ledger_batch_id"] for m in done["kafka"]["messages"])
    with psycopg.connect(pg_resource.get_url()) as conn:
        stored = conn.execute(
            "SELECT meter_id, array_agg(DISTINCT record_version), count(*) FROM ops.meter_readings "
            "WHERE meter_id = ANY(%s) GROUP BY meter_id",
            (meters,),
        ).fetchall()
    # Each meter's rows carry the offset of its own message, in the partition its key hashes to.
    assert {m: (versions, n) for m, versions, n in stored} == {m: ([where[m][1]], 3) for m in meters}
    partitions = {where[m][0] for m in meters}
    assert len(partitions) > 1, "six meters over three partitions all hashed to one: the test proves little"


def test_the_audit_entry_of_a_request_of_500_messages_names_them_all_in_a_bounded_record(
    kafka_resource: KafkaResource, pg_resource: PostgresResource, tmp_path: Path
) -> None:
    """The `ingest.post` entry named the first message only of a request that made many: it names how
    many, and per partition the offset range they took and how many of it are theirs. Its size is
    the topic's partitions', not the request's 500 messages'."""
    kafka_resource.ensure_topics(partitions=3)
    readings = [
        {
            "meter_id": f"MTR-AUD500-{n:03d}",
            "reading_start": recent(2, 0),
            "interval_minutes": 15,
            "energy_kwh": 0.1,
        }
        for n in range(500)
    ]
    app = create_app(kafka_settings(tmp_path, pg_resource, kafka_resource))
    with TestClient(app) as api, kafka_resource.producer() as producer:
        app.state.sender = KafkaSender(kafka_resource, producer)
        posted = api.post("/v1/meter_readings", json={"records": readings}, headers=token("ingest"))
    assert posted.status_code == 202, posted.text
    batch_id = posted.json()["data"]["batch_id"]
    topic = kafka_resource.topic("meter_readings")
    sent = _messages(kafka_resource, topic)
    assert len(sent) == 500
    with psycopg.connect(pg_resource.get_url()) as conn:
        (entry,) = audit.entries(conn, action="ingest.post", target=f"api_batch:{batch_id}")
    details = entry.details
    assert (details["kafka_topic"], details["kafka_messages"], entry.affected) == (topic, 500, 500)
    offsets: dict[int, list[int]] = {}
    for partition, offset, _, _ in sent:  # the topic is this test's own: every message is the request's
        offsets.setdefault(partition, []).append(offset)
    assert details["kafka_partitions"] == [
        {"partition": p, "first_offset": min(o), "last_offset": max(o), "messages": len(o)}
        for p, o in sorted(offsets.items())
    ]
    assert len(offsets) == 3
    assert len(json.dumps(details)) < 600
