"""Metric families built from the catalogue's specs: name, kind, labels and help are defined once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.utils import floatToGoString

from metrify_assets.observability.catalogue import ALL, Kind, MetricSpec

SPECS: Mapping[str, MetricSpec] = {spec.name: spec for spec in ALL}


def _spec(name: str, kind: Kind) -> MetricSpec:
    spec = SPECS[name]
    if spec.kind != kind:
        raise ValueError(f"{name} is a {spec.kind} in the catalogue, not a {kind}")
    return spec


def counter(name: str) -> CounterMetricFamily:
    spec = _spec(name, "counter")
    return CounterMetricFamily(spec.name, spec.help, labels=list(spec.labels))


def gauge(name: str) -> GaugeMetricFamily:
    spec = _spec(name, "gauge")
    return GaugeMetricFamily(spec.name, spec.help, labels=list(spec.labels))


def histogram(name: str) -> HistogramMetricFamily:
    spec = _spec(name, "histogram")
    return HistogramMetricFamily(spec.name, spec.help, labels=list(spec.labels))


def add_histogram(
    metric: HistogramMetricFamily,
    labels: Sequence[str],
    bounds: Sequence[float],
    cumulative: Sequence[float],
    count: float,
    total: float,
) -> None:
    """One histogram series from its cumulative bucket counts (`le` each bound), count and sum."""
    buckets = [(floatToGoString(b), c) for b, c in zip(bounds, cumulative, strict=True)]
    metric.add_metric(list(labels), [*buckets, ("+Inf", count)], total)
