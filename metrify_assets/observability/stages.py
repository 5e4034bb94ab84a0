"""A batch's stages, timed and traced by one helper: `trace_batch` opens the batch's span and log
context, `BatchTrace.stage(name)` a child span per stage that also adds its wall time to `seconds`.

The same seconds go to `ops.ingest_ledger.stage_seconds` (the metrics exporter's
`metrify_batch_stage_duration_seconds`), so a stage is timed whether or not tracing is on. The cost is
per stage, never per record: a few microseconds a stage with tracing off, tens with it on.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.util.types import AttributeValue

from metrify_assets.observability import logs
from metrify_assets.observability.catalogue import BATCH_STAGES
from metrify_assets.observability.tracing import tracer

BATCH_SPAN = "metrify.batch"


class BatchTrace:
    """One batch's span and the seconds it spent in each stage so far."""

    def __init__(self, span: trace.Span) -> None:
        self.span = span
        self.seconds: dict[str, float] = {}
        self._open: tuple[str, float] | None = None

    @contextmanager
    def stage(self, name: str, attributes: Mapping[str, AttributeValue] | None = None) -> Iterator[None]:
        """Time and trace the block as stage `name` (one of `BATCH_STAGES`); a stage entered twice
        (the raw and the validated GX suite) adds up."""
        if name not in BATCH_STAGES:
            raise ValueError(f"unknown batch stage {name!r}: one of {', '.join(BATCH_STAGES)}")
        span_attributes = {"metrify.stage": name, **(attributes or {})}
        with (
            tracer().start_as_current_span(f"{BATCH_SPAN}.{name}", attributes=span_attributes),
            logs.log_context(stage=name),
        ):
            start = time.perf_counter()
            self._open = (name, start)
            try:
                yield
            finally:
                self._open = None
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    def elapsed(self, stages: tuple[str, ...] = BATCH_STAGES) -> dict[str, float]:
        """Seconds per stage of `stages` so far (the open stage up to now), to the microsecond."""
        totals = dict(self.seconds)
        if self._open is not None:
            name, start = self._open
            totals[name] = totals.get(name, 0.0) + time.perf_counter() - start
        return {name: round(totals[name], 6) for name in stages if name in totals}

    def identify(self, batch_id: str, attributes: Mapping[str, AttributeValue] | None = None) -> None:
        """The batch's id (known once it is read) on its span and log lines, and more attributes."""
        self.span.set_attributes({"metrify.batch_id": batch_id, **(attributes or {})})
        logs.bind(batch_id=batch_id)

    def annotate(self, attributes: Mapping[str, AttributeValue]) -> None:
        self.span.set_attributes(attributes)


@contextmanager
def trace_batch(
    source: str, run_id: str | None = None, batch_id: str | None = None, origin: str | None = None
) -> Iterator[BatchTrace]:
    """The batch's parent span (`metrify.batch`) and log context around the block."""
    attributes: dict[str, AttributeValue] = {"metrify.source": source}
    for key, value in (
        ("metrify.run_id", run_id),
        ("metrify.batch_id", batch_id),
        ("metrify.origin", origin),
    ):
        if value is not None:
            attributes[key] = value
    with (
        tracer().start_as_current_span(BATCH_SPAN, attributes=attributes) as span,
        logs.log_context(source=source, run_id=run_id, batch_id=batch_id),
    ):
        yield BatchTrace(span)


@contextmanager
def within(
    batch: BatchTrace | None, source: str, batch_id: str, run_id: str | None, origin: str
) -> Iterator[BatchTrace]:
    """`batch` when the caller traces the batch already (a Kafka or landing run), else a new one."""
    if batch is not None:
        yield batch
        return
    with trace_batch(source, run_id=run_id, batch_id=batch_id, origin=origin) as opened:
        yield opened
