"""The API's spans: FastAPI's own, plus the batch an ingestion request created.

FastAPI (0.165+) traces every request natively through the global OpenTelemetry provider: a SERVER
span named `METHOD /route/{template}` with `http.request.method`, `http.route`, `url.path` and
`http.response.status_code` (5xx: an error), continuing a caller's `traceparent`, and child spans
`fastapi.dependencies` and `fastapi.endpoint`. With no provider installed it passes requests straight
through. So the API needs no middleware of its own: `install_tracing` installs the provider the
OTEL_* variables ask for, and `link_batch` names the batch on the request's trace.
"""

from __future__ import annotations

from collections.abc import Mapping

from metrify_assets.env import TracingSettings
from metrify_assets.observability import tracing

API_SERVICE = "metrify-api"


def install_tracing(settings: TracingSettings) -> None:
    """Export the API's spans as `settings` says (off by default)."""
    tracing.configure(settings, API_SERVICE)


def link_batch(api_batch_id: str, where: Mapping[str, str | int | None]) -> None:
    """On the current span (the request's `fastapi.endpoint`): the API batch and where its message
    went, as `serving.batches.accept` records it (`landing_batch_id`, or `kafka_topic`,
    `kafka_partition`, `kafka_offset`). A landed request is the pipeline's batch itself, so both
    spans carry the same `metrify.batch_id`; a Kafka one lies in the batch whose offset range holds
    its offset (docs/operations.md#traces)."""
    names = {
        "landing_batch_id": "metrify.batch_id",
        "kafka_topic": "metrify.kafka.topic",
        "kafka_partition": "metrify.kafka.partition",
        "kafka_offset": "metrify.kafka.offset",
    }
    linked = {names[k]: v for k, v in where.items() if k in names and v is not None}
    tracing.annotate({"metrify.api_batch_id": api_batch_id, **linked})
