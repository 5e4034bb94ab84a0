"""Consumer lag of the ingest group per topic-partition, from the brokers' offsets (never payloads)."""

from __future__ import annotations

from prometheus_client.core import Metric

from metrify_assets.contracts import CONTRACTS
from metrify_assets.observability.families import gauge
from metrify_assets.resources.kafka import KafkaResource
from metrify_assets.resources.kafka_offsets import consumer_lag, topic_offsets

# A scrape must answer within Prometheus's scrape timeout (10 s by default) even when the brokers
# do not: the exporter gives them this long, not the resource's sensor-sized timeout.
SCRAPE_TIMEOUT_MS = 3000


def scrape_resource(kafka: KafkaResource) -> KafkaResource:
    return kafka.model_copy(update={"timeout_ms": min(kafka.timeout_ms, SCRAPE_TIMEOUT_MS)})


def lag_families(kafka: KafkaResource) -> list[Metric]:
    """Messages not yet committed by the ingest group, per partition of each source topic (a topic
    that does not exist yet has no series)."""
    metric = gauge("metrify_consumer_lag_messages")
    for source in CONTRACTS:
        topic = kafka.topic(source)
        lag = consumer_lag(*topic_offsets(kafka, topic))
        for partition, messages in lag.items():
            metric.add_metric([topic, str(partition)], float(messages))
    return [metric]
