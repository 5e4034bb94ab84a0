"""`produce` (`metrify simulate --to kafka`, shared with `metrify ingest --to kafka`): each message holds
one grid node's (station's) records and is keyed by it; a batch of several is split, a line that is not
JSON goes unkeyed."""

from __future__ import annotations

import orjson
import pytest

from metrify_assets.ingestion.kafka.produce import produce
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
    produce(kafka_resource, {"grid_status": lines, "weather_observations": [orjson.dumps(weather).decode()]})
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
