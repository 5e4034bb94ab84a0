"""Every metric Metrify exports: one definition per metric, read by the exporter (`metrics.py`), the
alert rules' and dashboards' tests (every expression may name only these) and docs/operations.md.

Pipeline metrics are computed from PostgreSQL and Dagster's run storage at scrape time, so they are
right after a restart; API metrics are counted by the API process that serves them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["counter", "gauge", "histogram"]


@dataclass(frozen=True)
class MetricSpec:
    name: str  # as exposed (counters with their `_total` suffix)
    kind: Kind
    labels: tuple[str, ...]
    help: str


# Seconds: a micro-batch stage takes milliseconds to a few seconds; a whole batch up to minutes.
STAGE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
# Seconds: API requests, from a cached latest reading (~ms) to a large CSV page.
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# The stages of one batch (ingestion/batch.py and the Kafka and landing runs around it), in order.
BATCH_STAGES = ("read", "decode", "rules", "gx", "lake_write", "upsert", "dlq", "commit")

PIPELINE: tuple[MetricSpec, ...] = (
    MetricSpec(
        "metrify_records_received_total",
        "counter",
        ("source",),
        "Records received (decoded or malformed), per source; dead-letter replays are not new input "
        "(metrify_records_replayed_total).",
    ),
    MetricSpec(
        "metrify_records_accepted_total",
        "counter",
        ("source",),
        "Records accepted into the operational tables.",
    ),
    MetricSpec(
        "metrify_records_quarantined_total", "counter", ("source",), "Records quarantined with a reason."
    ),
    MetricSpec(
        "metrify_records_flagged_total", "counter", ("source",), "Accepted records flagged for review."
    ),
    MetricSpec(
        "metrify_records_replayed_total",
        "counter",
        ("source", "outcome"),
        "Dead letters replayed (metrify dlq replay), per source and outcome (accepted, quarantined "
        "again); not in the received, accepted, quarantined or flagged counters.",
    ),
    MetricSpec(
        "metrify_batches_total",
        "counter",
        ("source", "origin"),
        "Batches processed (ledger rows), per source and origin (kafka, landing, replay).",
    ),
    MetricSpec(
        "metrify_batch_stage_duration_seconds",
        "histogram",
        ("source", "stage"),
        "Time a batch spent in each stage (read, decode, rules, gx, lake_write, upsert, dlq, commit).",
    ),
    MetricSpec(
        "metrify_consumer_lag_messages",
        "gauge",
        ("topic", "partition"),
        "Messages the ingest consumer group has not committed, per topic-partition (Kafka only).",
    ),
    MetricSpec(
        "metrify_source_last_record_timestamp_seconds",
        "gauge",
        ("source",),
        "Event time of the newest stored record, per source (Unix seconds).",
    ),
    MetricSpec(
        "metrify_source_last_batch_timestamp_seconds",
        "gauge",
        ("source",),
        "When the newest batch of the source was processed (Unix seconds).",
    ),
    MetricSpec(
        "metrify_quality_score",
        "gauge",
        ("source",),
        "Record-weighted quality score (0-100) of the source's batches processed in the last hour; the newest batch's when none.",
    ),
    MetricSpec(
        "metrify_anomaly_rate",
        "gauge",
        (),
        "Share of scored readings marked anomalous on the newest scored day (0-1).",
    ),
    MetricSpec(
        "metrify_dlq_records",
        "gauge",
        ("source",),
        "Unresolved quarantined records a replay could still accept (not duplicates nor review "
        "rejections), per source (the dead-letter backlog).",
    ),
    MetricSpec(
        "metrify_review_pending", "gauge", ("source",), "Flagged records waiting for a reviewer's decision."
    ),
    MetricSpec(
        "metrify_vee_estimated_share",
        "gauge",
        (),
        "Share of intervals estimated by VEE on the newest processed day (0-1).",
    ),
    MetricSpec(
        "metrify_grid_state",
        "gauge",
        ("grid_node_id", "state"),
        "1 for each grid node's current system state (normal, alert, emergency), 0 for the others.",
    ),
    MetricSpec(
        "metrify_open_alerts",
        "gauge",
        ("kind", "severity"),
        "Alerts open (not resolved), per kind and severity.",
    ),
    MetricSpec(
        "metrify_lifecycle_late_rows_waiting",
        "gauge",
        ("dataset",),
        "Late rows kept hot because their day's lake copy is archived (GLACIER, DEEP_ARCHIVE): they "
        "merge into it once the day is restored, per tiered dataset.",
    ),
    MetricSpec(
        "metrify_pipeline_runs_total",
        "counter",
        ("job", "status"),
        "Dagster runs finished, per job and status (success, failure, canceled).",
    ),
    MetricSpec(
        "metrify_metrics_collect_seconds", "gauge", (), "How long the last scrape's database queries took."
    ),
    MetricSpec(
        "metrify_metrics_collect_errors_total",
        "counter",
        ("collector",),
        "Scrape-time collectors that failed (their metrics are missing from that scrape).",
    ),
)

API: tuple[MetricSpec, ...] = (
    MetricSpec(
        "metrify_api_requests_total",
        "counter",
        ("method", "route", "status"),
        "API requests, per route template and status code.",
    ),
    MetricSpec(
        "metrify_api_request_duration_seconds",
        "histogram",
        ("method", "route"),
        "API request latency, per route template.",
    ),
    MetricSpec("metrify_api_requests_in_progress", "gauge", ("method",), "API requests being served."),
    MetricSpec(
        "metrify_api_cache_up",
        "gauge",
        (),
        "1 when the API's Redis cache answers PING at the scrape, 0 when not (reads fall back to PostgreSQL).",
    ),
)

ALL: tuple[MetricSpec, ...] = PIPELINE + API


def series_names(spec: MetricSpec) -> tuple[str, ...]:
    """The sample names a metric exposes (a histogram's `_bucket`, `_sum`, `_count`)."""
    if spec.kind == "histogram":
        return (f"{spec.name}_bucket", f"{spec.name}_sum", f"{spec.name}_count")
    return (spec.name,)


def exported_series() -> frozenset[str]:
    """Every sample name a PromQL expression of the rules or dashboards may use."""
    return frozenset(name for spec in ALL for name in series_names(spec))
