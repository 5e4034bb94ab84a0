"""`produce` (`metrify simulate --to kafka`, shared with `metrify ingest --to kafka`): each message holds
one grid node's (station's) records and is keyed by it; a batch of several is split, a line that is not
JSON goes unkeyed."""

from __future__ import annotations

import orjson
import pytest

from metrify_assets.ingestion.kafka.produce import line_messages, produce
from metrify_assets.ingestion.limits import MAX_MESSAGE_RECORDS
from metrify_assets.resources.kafka import KafkaResource
from tests.ingestion.kafka.test_ingest_cli import read_topic


def _sent(kafka: KafkaResource, topic: str) -> list[tuple[bytes | None, bytes]]:
    return [(r.key, r.value) for r in read_topic(kafka, topic)]


@pytest.mark.kafka
def test_a_batch_of_several_nodes_or_stations_is_sent_as_one_keyed_message_each(
    kafka_resource: KafkaResource,
) -> None:
    kafka_resource.ensure_topics(partitions=3)
    at = "2026-03-01T00:00:00+00:00"
    grid = [{"grid_node_id": node, "measured_at": at, "frequency_hz": 50.0} for node in ("N-1", "N-2", "N-1")]
    weather = {"station_id": "ST-1", "observed_at": at, "temperature_c": 4.5}
    lines = [orjson.dumps({"records": grid}).decode(), orjson.dumps(grid[1]).decode(), "{not json"]
    sent_counts = produce(
        kafka_resource, {"grid_status": lines, "weather_observations": [orjson.dumps(weather).decode()]}
    )
    assert sent_counts == {"grid_status": 4, "weather_observations": 1}  # messages sent, not lines
    sent = sorted(
        _sent(kafka_resource, kafka_resource.topic("grid_status")), key=lambda m: (m[0] or b"", m[1])
    )
    assert sent == [
        (None, b"{not json"),
        (b"N-1", orjson.dumps({"records": [grid[0], grid[2]]})),
        (b"N-2", orjson.dumps(grid[1])),
        (b"N-2", orjson.dumps({"records": [grid[1]]})),
    ]
    assert _sent(kafka_resource, kafka_resource.topic("weather_observations")) == [
        (b"ST-1", orjson.dumps(weather))
    ]


def test_a_split_batch_keeps_its_other_fields_and_an_oversized_one_is_sent_whole() -> None:
    """The contract keeps a batch's unknown fields in the raw batch: each owner's part carries them.
    A batch over the per-message cap is dead-lettered whole on every path, so it is not split into
    parts the cap would let through."""
    at = "2026-03-01T00:00:00+00:00"
    body = {"records": [{"meter_id": m, "reading_start": at} for m in ("M-1", "M-2")], "sent_by": "hes-7"}
    parts = line_messages("meter_readings", orjson.dumps(body).decode())
    assert [(key, orjson.loads(value)["sent_by"]) for key, value in parts] == [
        (b"M-1", "hes-7"),
        (b"M-2", "hes-7"),
    ]
    big = {"records": [{"meter_id": f"M-{i % 3}"} for i in range(MAX_MESSAGE_RECORDS + 1)]}
    text = orjson.dumps(big).decode()
    assert line_messages("meter_readings", text) == [(None, text.encode())]  # no one owner: unkeyed
