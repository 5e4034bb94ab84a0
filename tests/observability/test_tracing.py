"""Traces on real services: a batch's stage spans under its span (PostgreSQL, a lake in tmp_path), a
Kafka batch's read, dead-letter and commit spans (a real broker, the ingest op's code), an API request's span
naming the batch it created, and nothing recorded when tracing is not configured.

Spans go to the SDK's in-memory exporter through a SimpleSpanProcessor (exported as each ends).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import psycopg
import pytest
from fastapi.testclient import TestClient
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util._once import Once

from metrify_assets.contracts import METER_READINGS, WEATHER_OBSERVATIONS
from metrify_assets.env import TracingSettings, resolve_settings, resolve_tracing
from metrify_assets.ingestion.assets import IngestBatchConfig, ingest_batch, landing_spec
from metrify_assets.ingestion.batch import BatchSpec, process_batch
from metrify_assets.ingestion.kafka.produce import produce
from metrify_assets.ingestion.kafka.ranges import OffsetRange
from metrify_assets.ingestion.landing import LandedFile
from metrify_assets.observability import tracing
from metrify_assets.observability.catalogue import BATCH_STAGES
from metrify_assets.observability.stages import BATCH_SPAN
from metrify_assets.resources import LakeResource, PostgresResource, QualityResource, RedisResource
from metrify_assets.resources.kafka import KafkaResource
from metrify_assets.resources.lake import Lake
from metrify_assets.serving.app import create_app
from metrify_assets.serving.auth import issue_token

pytestmark = pytest.mark.postgres
SECRET = "test-secret-of-at-least-32-bytes-for-hs256"
NOW_DAY = date(2026, 3, 29)
NOW = pd.Timestamp("2026-04-01T00:00:00Z")
PROCESS_STAGES = ("lake_write", "decode", "gx", "rules", "upsert")  # what process_batch itself times


def reading(meter: str, minute: int, kwh: float = 0.5) -> str:
    return json.dumps(
        {"meter_id": meter, "reading_start": f"2026-03-29T00:{minute:02d}:00Z", "interval_minutes": 15,
         "energy_kwh": kwh}
    )  # fmt: skip


MESSAGES = [reading("M1", 0), reading("M1", 15), reading("M2", 0, -0.2), "{broken"]


def install(provider: TracerProvider | None) -> None:
    """Replace the process's global tracer provider, which the API lets be set once only (as
    opentelemetry-test-utils' `reset_trace_globals` does); None: back to the default no-op one."""
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace._TRACER_PROVIDER = None
    if provider is not None:
        trace.set_tracer_provider(provider)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    install(provider)
    yield exporter
    install(None)
    provider.shutdown()


def named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == name]


def children(exporter: InMemorySpanExporter, parent: ReadableSpan) -> list[ReadableSpan]:
    assert parent.context is not None
    return [
        s
        for s in exporter.get_finished_spans()
        if s.parent is not None and s.parent.span_id == parent.context.span_id
    ]


def trace_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.trace_id


def stage_seconds(conn: psycopg.Connection, batch_id: str) -> dict[str, float]:
    row = conn.execute(
        "SELECT stage_seconds FROM ops.ingest_ledger WHERE batch_id = %s", (batch_id,)
    ).fetchone()
    assert row is not None
    return dict(row[0])


def test_every_stage_is_a_span_under_the_batch_span_and_timed_in_the_ledger(
    pg: psycopg.Connection, tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    spec = BatchSpec(METER_READINGS, "trace-b1", "landing", "trace-b1.jsonl", NOW_DAY)
    result = process_batch(
        spec, MESSAGES, [1] * len(MESSAGES), Lake(str(tmp_path / "lake")), pg, NOW, run_id="run-1"
    )
    pg.commit()

    (batch,) = named(spans, BATCH_SPAN)
    attributes = dict(batch.attributes or {})
    assert attributes["metrify.batch_id"] == "trace-b1"
    assert attributes["metrify.source"] == "meter_readings"
    assert attributes["metrify.run_id"] == "run-1"
    assert attributes["metrify.origin"] == "landing"
    assert (attributes["metrify.records_in"], attributes["metrify.accepted"]) == (4, 2)
    assert attributes["metrify.quarantined"] == result.ledger.quarantined == 2
    stages = children(spans, batch)
    assert sorted(s.name for s in stages) == sorted(
        f"{BATCH_SPAN}.{name}" for name in ("lake_write", "decode", "gx", "gx", "rules", "upsert")
    )
    assert all(dict(s.attributes or {})["metrify.stage"] == s.name.rsplit(".", 1)[1] for s in stages)
    suites = {dict(s.attributes or {}).get("metrify.gx_suite") for s in stages if s.name.endswith(".gx")}
    assert suites == {"raw_meter_readings", "validated_meter_readings"}

    seconds = stage_seconds(pg, "trace-b1")
    assert set(seconds) == set(PROCESS_STAGES)
    assert all(v > 0 for v in seconds.values())
    # The same clock as the spans: a stage's stored seconds fit in its spans' duration.
    for name in PROCESS_STAGES:
        span_s = sum(
            ((s.end_time or 0) - (s.start_time or 0)) / 1e9
            for s in stages
            if s.name == f"{BATCH_SPAN}.{name}"
        )
        assert seconds[name] <= span_s + 1e-3, name


def test_untraced_process_records_no_span_and_still_times_the_stages(
    pg: psycopg.Connection, tmp_path: Path
) -> None:
    install(None)  # as in a process where no OTEL_* variable is set
    assert tracing.configure(resolve_tracing({}), "metrify-test") is False
    assert not isinstance(trace.get_tracer_provider(), TracerProvider)
    exporter = InMemorySpanExporter()  # not installed: nothing may reach it
    spec = BatchSpec(METER_READINGS, "untraced", "landing", "untraced.jsonl", NOW_DAY)
    process_batch(spec, MESSAGES, [1] * len(MESSAGES), Lake(str(tmp_path / "lake")), pg, NOW)
    pg.commit()
    assert exporter.get_finished_spans() == ()
    assert set(stage_seconds(pg, "untraced")) == set(PROCESS_STAGES)
    assert not trace.get_current_span().is_recording()


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, TracingSettings()),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4318"}, TracingSettings(("otlp",))),
        ({"OTEL_TRACES_EXPORTER": "console,otlp", "OTEL_SERVICE_NAME": "x"}, TracingSettings(("console", "otlp"), "x")),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4318"}, TracingSettings()),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, TracingSettings()),
    ],
)  # fmt: skip
def test_tracing_is_off_unless_an_exporter_or_endpoint_is_set(
    environ: dict[str, str], expected: TracingSettings
) -> None:
    assert resolve_tracing(environ) == expected


@pytest.mark.parametrize(
    "environ",
    [
        {"OTEL_TRACES_EXPORTER": "zipkin"},
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
    ],
)
def test_unsupported_exporters_turn_tracing_off_with_a_warning(
    environ: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """A tracing setting must not take the code location, the API and the CLI down."""
    settings = resolve_tracing(environ)
    assert not settings.enabled and settings.refused and "OTEL_" in settings.refused
    with caplog.at_level(logging.WARNING, logger="metrify_assets.observability.tracing"):
        assert tracing.configure(settings, "metrify-test") is False
    assert [r.getMessage() for r in caplog.records] == [f"tracing is off: {settings.refused}"]


def test_configure_installs_one_provider_named_for_the_process() -> None:
    install(None)
    try:
        settings = resolve_tracing({"OTEL_TRACES_EXPORTER": "console"})
        assert tracing.configure(settings, "metrify-test") is True
        provider = trace.get_tracer_provider()
        assert isinstance(provider, TracerProvider)
        assert provider.resource.attributes["service.name"] == "metrify-test"
        assert tracing.configure(settings, "metrify-other") is False  # once per process
        provider.shutdown()
    finally:
        install(None)


@pytest.mark.kafka
def test_a_kafka_batch_traces_read_dead_letter_and_commit(
    kafka_resource: KafkaResource,
    pg_resource: PostgresResource,
    pg: psycopg.Connection,
    tmp_path: Path,
    spans: InMemorySpanExporter,
) -> None:
    source = WEATHER_OBSERVATIONS.source
    kafka_resource.ensure_topics(partitions=1)
    good = json.dumps(
        {"station_id": "W1", "observed_at": "2026-03-29T10:00:00Z", "temperature_c": 9.5, "humidity_pct": 80,
         "pressure_hpa": 1012, "wind_speed_ms": 3.2, "precipitation_mm": 0}
    )  # fmt: skip
    produce(kafka_resource, {source: [good, "{not json"]})
    rng = OffsetRange(kafka_resource.topic(source), 0, 0, 2)
    config = IngestBatchConfig(topic=rng.topic, partition=0, start=0, end=2)
    # What the ingest op runs (a Dagster run adds only its own bookkeeping around it).
    ingest_batch(
        WEATHER_OBSERVATIONS,
        config,
        "run-k",
        pg_resource,
        LakeResource(url=str(tmp_path / "lake")),
        kafka_resource,
        QualityResource(),
        RedisResource(),
    )

    (batch,) = named(spans, BATCH_SPAN)
    attributes = dict(batch.attributes or {})
    assert attributes["metrify.batch_id"] == rng.batch_id
    assert attributes["metrify.run_id"] == "run-k"
    assert (attributes["metrify.kafka.offset_start"], attributes["metrify.kafka.offset_end"]) == (0, 2)
    names = [s.name.rsplit(".", 1)[1] for s in children(spans, batch)]
    assert set(names) == set(BATCH_STAGES)
    assert names.count("commit") == 2  # the database's, then the offset's
    assert names.index("read") < names.index("decode") and names.index("upsert") < names.index("dlq")
    seconds = stage_seconds(pg, rng.batch_id)
    assert set(seconds) == set(BATCH_STAGES)  # dlq and commit added by the delivered update
    delivered = pg.execute(
        "SELECT delivered_at IS NOT NULL FROM ops.ingest_ledger WHERE batch_id = %s", (rng.batch_id,)
    ).fetchone()
    assert delivered == (True,)


def test_an_api_request_span_names_its_route_and_the_batch_it_created(
    pg_resource: PostgresResource, pg: psycopg.Connection, tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    settings = resolve_settings(
        {"METRIFY_HOME": str(tmp_path), "METRIFY_POSTGRES_URL": pg_resource.get_url(), "METRIFY_API_JWT_SECRET": SECRET}
    )  # fmt: skip
    signed = issue_token(SECRET, "tester", ["ingest"], timedelta(minutes=5))
    with TestClient(create_app(settings)) as client:
        response = client.post(
            "/v1/meter_readings",
            content=reading("M7", 30),
            headers={"Authorization": f"Bearer {signed}", "Content-Type": "application/json"},
        )
        assert response.status_code == 202, response.text
        assert client.get("/healthz").status_code == 200
    api_batch_id = response.json()["data"]["batch_id"]

    (post,) = named(spans, "POST /v1/{source}")  # FastAPI's server span
    attributes = dict(post.attributes or {})
    assert post.kind == trace.SpanKind.SERVER
    assert attributes["http.route"] == "/v1/{source}"
    assert attributes["url.path"] == "/v1/meter_readings"
    assert attributes["http.response.status_code"] == 202
    (endpoint,) = [
        s for s in named(spans, "fastapi.endpoint") if s.context and s.context.trace_id == trace_id(post)
    ]
    linked = dict(endpoint.attributes or {})
    assert linked["metrify.api_batch_id"] == api_batch_id
    (health,) = named(spans, "GET /healthz")
    assert dict(health.attributes or {})["http.response.status_code"] == 200

    # The pipeline's batch span carries the same metrify.batch_id: the two are found together.
    (landing_batch_id,) = pg.execute(
        "SELECT landing_batch_id FROM ops.api_batches WHERE batch_id = %s", (api_batch_id,)
    ).fetchone() or (None,)
    assert linked["metrify.batch_id"] == landing_batch_id
    (path,) = (settings.landing_dir / "meter_readings").glob("*.jsonl")
    landed = LandedFile.from_path(path)
    lines = path.read_text().splitlines()
    process_batch(landing_spec(METER_READINGS, landed), lines, [landed.seq], Lake(settings.lake_url), pg, NOW)
    pg.commit()
    (batch,) = named(spans, BATCH_SPAN)
    assert dict(batch.attributes or {})["metrify.batch_id"] == landing_batch_id
