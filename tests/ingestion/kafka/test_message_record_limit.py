"""From Kafka, a message over MAX_MESSAGE_RECORDS records is one dead letter: one quarantine row and
one message on <topic>.dlq, the message verbatim (it was one per record: 1.35 M for three messages)."""

from __future__ import annotations

import dagster as dg
import psycopg
import pytest

from metrify_assets.ingestion.kafka.produce import produce
from metrify_assets.ingestion.limits import MAX_MESSAGE_RECORDS
from metrify_assets.resources import PostgresResource
from metrify_assets.resources.kafka import KafkaResource
from tests.ingestion.kafka.test_ingest import SOURCE, dead_letters, observation, run_all, tick

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


@pytest.fixture
def defs(kafka_defs: dg.Definitions) -> dg.Definitions:
    return kafka_defs


def test_a_message_over_the_record_limit_is_dead_lettered_once(
    defs: dg.Definitions, kafka_resource: KafkaResource, pg_resource: PostgresResource, pg: psycopg.Connection
) -> None:
    kafka_resource.ensure_topics(partitions=1)
    topic = kafka_resource.topic(SOURCE)
    big = '{"records":[' + ",".join(["7"] * (MAX_MESSAGE_RECORDS * 3)) + "]}"
    produce(kafka_resource, {SOURCE: [observation("W1", 0), big, observation("W1", 1)]})
    instance = dg.DagsterInstance.ephemeral()
    first = tick(defs, instance, kafka_resource, pg_resource, None)
    run_all(defs, instance, first.run_requests or [])

    ledger = pg.execute(
        "SELECT records_in, accepted, quarantined FROM ops.ingest_ledger WHERE source = %s", (SOURCE,)
    ).fetchall()
    assert ledger == [(3, 2, 1)]
    reason = f"malformed:too_many_records ({MAX_MESSAGE_RECORDS * 3}; at most {MAX_MESSAGE_RECORDS})"
    assert pg.execute("SELECT record_index, reasons FROM ops.quarantine").fetchall() == [(1, reason)]
    [letter] = dead_letters(kafka_resource, topic)
    assert (letter["value"], letter["reason"], letter["offset"]) == (big, reason, "1")
