"""OpenTelemetry tracing: off unless configured, so an untraced process pays for no-op spans only.

`configure` installs the SDK's tracer provider, once per process, when the OTEL_* variables ask for
an exporter (env.TracingSettings: `otlp` over HTTP, `console`); otherwise the API's global no-op
provider stays and every span below is a non-recording one costing about a microsecond. Everything
Metrify traces asks the global provider for its tracer when it starts a span, so a provider installed
later (by `configure`, or by a test) is used from then on. docs/operations.md#traces lists the spans.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.util.types import AttributeValue

from metrify_assets.env import TracingSettings

log = logging.getLogger(__name__)

TRACER_NAME = "metrify"


def tracer() -> trace.Tracer:
    """Metrify's tracer from the global provider (a no-op one until a provider is installed)."""
    return trace.get_tracer(TRACER_NAME)


def _exporter(name: str) -> SpanExporter:
    if name == "console":
        return ConsoleSpanExporter()
    # Reads OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT, _HEADERS, _TIMEOUT, _COMPRESSION itself.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def configure(settings: TracingSettings, service: str) -> bool:
    """Install a provider exporting to `settings.exporters` as `service` (OTEL_SERVICE_NAME wins);
    False (nothing done) when tracing is off or a provider is already installed. The provider
    flushes its batches when the process exits; a forked Dagster run restarts the export thread."""
    if settings.refused:
        log.warning("tracing is off: %s", settings.refused)
    if not settings.enabled or isinstance(trace.get_tracer_provider(), TracerProvider):
        return False
    # Resource.create adds OTEL_RESOURCE_ATTRIBUTES (deployment.environment, host.name...).
    resource = Resource.create({SERVICE_NAME: settings.service_name or service})
    provider = TracerProvider(resource=resource)
    for name in settings.exporters:
        provider.add_span_processor(BatchSpanProcessor(_exporter(name)))
    trace.set_tracer_provider(provider)
    return True


def annotate(attributes: Mapping[str, AttributeValue]) -> None:
    """Add attributes to the current span (an API request's, a batch's); nothing when not tracing."""
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes(attributes)
