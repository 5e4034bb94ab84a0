"""The pipeline exporter on real stores: PostgreSQL (real batches through `process_batch`, rows as the
pipeline writes them), a Kafka broker for the ingest group's lag, Dagster runs on an ephemeral
instance. Values are asserted exactly, scrape after scrape and after a restart (a new collector)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import pandas as pd
import psycopg
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from metrify_assets.contracts import GRID_STATUS, METER_READINGS, SourceContract
from metrify_assets.ingestion import dead_letters, replay
from metrify_assets.ingestion.batch import BatchSpec, process_batch
from metrify_assets.ingestion.kafka.batches import commit_range
from metrify_assets.ingestion.kafka.ranges import OffsetRange
from metrify_assets.observability.catalogue import BATCH_STAGES, PIPELINE
from metrify_assets.observability.metrics import PipelineCollector, pipeline_registry
from metrify_assets.resources import PostgresResource
from metrify_assets.resources.kafka import KafkaResource
from metrify_assets.resources.lake import Lake

pytestmark = pytest.mark.postgres
NOW = pd.Timestamp.now(tz="UTC").floor("15min")
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(collector: PipelineCollector) -> Samples:
    """One scrape through the text exposition, parsed back: (sample name, labels) -> value."""
    text = generate_latest(pipeline_registry(collector)).decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of `name` over the series matching `labels` (0 when none)."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def connector(pg_resource: PostgresResource) -> Callable[[], AbstractContextManager[psycopg.Connection]]:
    @contextmanager
    def connect() -> Iterator[psycopg.Connection]:
        with pg_resource.connect(autocommit=True) as conn:
            yield conn

    return connect


def reading(meter: str, start: pd.Timestamp, kwh: float) -> str:
    return json.dumps(
        {"meter_id": meter, "reading_start": start.isoformat(), "interval_minutes": 15, "energy_kwh": kwh}
    )


def run_batch(
    conn: psycopg.Connection,
    lake: Lake,
    batch_id: str,
    messages: list[str],
    contract: SourceContract = METER_READINGS,
) -> tuple[int, int, int, int]:
    spec = BatchSpec(contract, batch_id, "landing", f"{batch_id}.jsonl", NOW.date())
    ledger = process_batch(spec, messages, [1] * len(messages), lake, conn, NOW).ledger
    conn.commit()
    return ledger.records_in, ledger.accepted, ledger.quarantined, ledger.flagged


def meter_batch(n: int, day_offset: int = 0) -> list[str]:
    """`n` good readings, one negative (rejected) and one malformed line."""
    start = NOW - pd.Timedelta(days=1 + day_offset)
    good = [reading(f"M{i % 3}", start + pd.Timedelta(minutes=15 * (i // 3)), 0.5) for i in range(n)]
    return [*good, reading("MX", start, -1.0), "{broken"]


def insert_ledger(
    conn: psycopg.Connection,
    batch_id: str,
    processed_at: datetime,
    counts: tuple[int, int, int, int] = (10, 8, 2, 1),
    stages: dict[str, float] | None = None,
    source: str = "meter_readings",
    origin: str = "kafka",
    quality: float | None = 90.0,
) -> None:
    records_in, accepted, quarantined, flagged = counts
    conn.execute(
        "INSERT INTO ops.ingest_ledger (batch_id, source, origin, origin_ref, raw_key, records_in, accepted, "
        "flagged, quarantined, quality_score, processed_at, recorded_at, stage_seconds) "
        "VALUES (%s, %s, %s, 'ref', 'raw', %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            batch_id,
            source,
            origin,
            records_in,
            accepted,
            flagged,
            quarantined,
            quality,
            processed_at,
            processed_at,  # recorded then: as the pipeline writes a new row
            None if stages is None else json.dumps(stages),
        ),
    )
    conn.commit()


def test_record_counters_equal_the_ledger_of_real_batches(
    pg: psycopg.Connection, pg_resource: PostgresResource, tmp_path: Path
) -> None:
    lake = Lake(str(tmp_path / "lake"))
    collector = PipelineCollector(connector(pg_resource))
    first = [run_batch(pg, lake, "b1", meter_batch(6)), run_batch(pg, lake, "b2", meter_batch(3, 1))]
    samples = scrape(collector)
    ledger = pg.execute(
        "SELECT sum(records_in), sum(accepted), sum(quarantined), sum(flagged), count(*) FROM ops.ingest_ledger"
    ).fetchone()
    assert ledger == (13, 9, 4, 0, 2)
    assert [sum(c[i] for c in first) for i in range(4)] == [13, 9, 4, 0]
    source = {"source": "meter_readings"}
    assert value(samples, "metrify_records_received_total", **source) == 13
    assert value(samples, "metrify_records_accepted_total", **source) == 9
    assert value(samples, "metrify_records_quarantined_total", **source) == 4
    assert value(samples, "metrify_records_flagged_total", **source) == 0
    assert value(samples, "metrify_batches_total", source="meter_readings", origin="landing") == 2
    assert value(samples, "metrify_dlq_records", **source) == 4  # the rejected and malformed records
    assert value(samples, "metrify_dlq_records", source="grid_status") == 0

    # A later scrape adds exactly the new batch; replaying a batch (same id) counts it once.
    records_in, accepted, quarantined, _ = run_batch(pg, lake, "b3", meter_batch(9, 2))
    run_batch(pg, lake, "b1", meter_batch(6))
    again = scrape(collector)
    assert value(again, "metrify_records_received_total", **source) == 13 + records_in == 24
    assert value(again, "metrify_records_accepted_total", **source) == 9 + accepted
    assert value(again, "metrify_records_quarantined_total", **source) == 4 + quarantined
    assert value(again, "metrify_batches_total", source="meter_readings", origin="landing") == 3
    # The stage histogram counts each stage of each batch that timed it (stage_seconds).
    timed = dict(
        pg.execute(
            "SELECT s, count(*) FROM ops.ingest_ledger, jsonb_object_keys(stage_seconds) AS s GROUP BY s"
        ).fetchall()
    )
    for stage in BATCH_STAGES:
        count = ("metrify_batch_stage_duration_seconds_count", frozenset({**source, "stage": stage}.items()))
        assert again.get(count, 0) == timed.get(stage, 0), stage
    # After a restart (a new collector), the same values: they come from the stores (sums up to the
    # order of float additions).
    assert {
        k: v for k, v in scrape(PipelineCollector(connector(pg_resource))).items() if "collect" not in k[0]
    } == pytest.approx({k: v for k, v in again.items() if "collect" not in k[0]})


def test_a_dead_letter_replay_is_no_new_input(
    pg: psycopg.Connection, pg_resource: PostgresResource, tmp_path: Path
) -> None:
    """Replayed dead letters were received (and quarantined) when they first came in: a replay adds
    to `metrify_records_replayed_total` by outcome, and to the batches of origin `replay`, never to
    received, accepted, quarantined or flagged (the quarantine-rate alerts divide those). Both reads:
    a settled replay row (the first scrape's seed) and a real replay within the window."""
    lake = Lake(str(tmp_path / "lake"))
    run_batch(pg, lake, "b1", meter_batch(6))  # 8 in: 6 accepted, 2 quarantined (negative, malformed)
    insert_ledger(pg, "replay-old", datetime.now(UTC) - timedelta(days=3), (3, 2, 1, 0), origin="replay")
    collector = PipelineCollector(connector(pg_resource))
    source = {"source": "meter_readings"}
    first = scrape(collector)
    counted = {
        name: value(first, f"metrify_records_{name}_total", **source)
        for name in ("received", "accepted", "quarantined", "flagged")
    }
    assert counted == {"received": 8, "accepted": 6, "quarantined": 2, "flagged": 0}
    assert value(first, "metrify_records_replayed_total", outcome="accepted", **source) == 2
    assert value(first, "metrify_records_replayed_total", outcome="quarantined", **source) == 1

    # Both letters replayed with the rules unchanged: both quarantined again.
    letters = dead_letters.select(pg, dead_letters.Selection(batch_ids=("b1",)))
    result = replay.replay(pg, lake, letters, NOW)
    assert (result.replayed, result.accepted, result.still_quarantined) == (2, 0, 2)
    for samples in (scrape(collector), scrape(PipelineCollector(connector(pg_resource)))):
        assert {
            name: value(samples, f"metrify_records_{name}_total", **source) for name in counted
        } == counted, "a replay is not new input"
        assert value(samples, "metrify_records_replayed_total", outcome="accepted", **source) == 2
        assert value(samples, "metrify_records_replayed_total", outcome="quarantined", **source) == 1 + 2
        assert value(samples, "metrify_batches_total", origin="replay", **source) == 2
        assert value(samples, "metrify_batches_total", origin="landing", **source) == 1


def test_the_stage_histogram_and_incremental_scrapes(
    pg: psycopg.Connection, pg_resource: PostgresResource
) -> None:
    now = datetime.now(UTC)
    settled, recent = now - timedelta(days=3), now - timedelta(seconds=5)
    insert_ledger(pg, "old-1", settled, stages={"read": 0.004, "upsert": 0.3, "dlq": 0.005, "unknown": 9.0})
    insert_ledger(pg, "old-2", settled, stages={"read": 0.02, "upsert": 5.0}, origin="landing")
    insert_ledger(pg, "older", settled - timedelta(days=30), stages=None)  # before stage timing
    insert_ledger(pg, "new-1", recent, stages={"read": 0.004, "commit": 200.0, "dlq": 0.005})
    collector = PipelineCollector(connector(pg_resource))
    samples = scrape(collector)

    def bucket(stage: str, le: str) -> float:
        return value(
            samples,
            "metrify_batch_stage_duration_seconds_bucket",
            source="meter_readings",
            stage=stage,
            le=le,
        )

    def stat(suffix: str, stage: str) -> float:
        return value(
            samples, f"metrify_batch_stage_duration_seconds_{suffix}", source="meter_readings", stage=stage
        )

    assert bucket("read", "0.005") == 2 and bucket("read", "0.025") == 3 and bucket("read", "+Inf") == 3
    assert stat("count", "read") == 3 and stat("sum", "read") == pytest.approx(0.028)
    assert bucket("upsert", "0.25") == 0 and bucket("upsert", "0.5") == 1 and bucket("upsert", "2.5") == 1
    # A time equal to a bound is in that bound's bucket (`le`), summed in SQL (settled) or not (recent).
    assert bucket("upsert", "5.0") == 2 and bucket("dlq", "0.005") == 2
    assert bucket("commit", "120.0") == 0 and bucket("commit", "+Inf") == 1 and stat("sum", "commit") == 200.0
    stages = {dict(ls)["stage"] for n, ls in samples if n == "metrify_batch_stage_duration_seconds_count"}
    assert stages == {"read", "upsert", "commit", "dlq"} <= set(BATCH_STAGES)  # `unknown` is not a stage
    assert value(samples, "metrify_records_received_total", source="meter_readings") == 40
    assert value(samples, "metrify_batches_total", source="meter_readings", origin="kafka") == 3

    # Rows after the first scrape: the new ones are counted, and a re-recorded recent batch replaces its values.
    insert_ledger(pg, "new-2", now, counts=(5, 5, 0, 0), stages={"read": 1.0})
    pg.execute("UPDATE ops.ingest_ledger SET records_in = 12, accepted = 10 WHERE batch_id = 'new-1'")
    # A reviewer rejects a flagged record of a settled batch: the ledger moves it, the counters do not.
    pg.execute(
        "INSERT INTO ops.review_queue (batch_id, record_index, source, record_key, reasons, status) "
        "VALUES ('old-1', 0, 'meter_readings', 'M1|x', 'spike', 'rejected')"
    )
    pg.execute(
        "UPDATE ops.ingest_ledger SET accepted = accepted - 1, quarantined = quarantined + 1, "
        "flagged = flagged - 1 WHERE batch_id = 'old-1'"
    )
    # A settled row appearing only now (older than the lookback window) is not read by a later scrape.
    insert_ledger(pg, "late", settled, counts=(100, 100, 0, 0))
    pg.commit()
    later = scrape(collector)
    source = {"source": "meter_readings"}
    assert value(later, "metrify_records_received_total", **source) == 40 + 5 + 2
    assert value(later, "metrify_records_accepted_total", **source) == 32 + 5 + 2
    assert value(later, "metrify_records_quarantined_total", **source) == 8
    assert value(later, "metrify_records_flagged_total", **source) == 4
    assert value(later, "metrify_batch_stage_duration_seconds_count", stage="read", **source) == 4
    # A restart reads the whole ledger again: the late row too, and the rejection is added back.
    restarted = scrape(PipelineCollector(connector(pg_resource)))
    assert value(restarted, "metrify_records_received_total", **source) == 147
    assert value(restarted, "metrify_records_accepted_total", **source) == 139
    assert value(restarted, "metrify_records_quarantined_total", **source) == 8


def test_gauges_from_the_current_state(
    pg: psycopg.Connection, pg_resource: PostgresResource, tmp_path: Path
) -> None:
    lake = Lake(str(tmp_path / "lake"))
    run_batch(pg, lake, "m1", meter_batch(6))
    grid = [
        json.dumps(
            {
                "grid_node_id": node,
                "measured_at": (NOW - pd.Timedelta(hours=2, seconds=10 * i)).isoformat(),
                "frequency_hz": 50.0,
                "voltage_v": 230.0,
                "load_mw": 10.0,
            }
        )
        for node in ("N1", "N2", "N3")
        for i in range(2)
    ]
    run_batch(pg, lake, "g1", grid, GRID_STATUS)
    now = datetime.now(UTC)
    # Quality: batches of the last hour weighted by records; a source with none there: its newest batch's.
    pg.execute(
        "UPDATE ops.ingest_ledger SET quality_score = 80, records_in = 10, accepted = 8, quarantined = 2 WHERE batch_id = 'm1'"
    )
    insert_ledger(pg, "m2", now - timedelta(minutes=5), counts=(30, 30, 0, 0), quality=100.0)
    insert_ledger(pg, "w-old", now - timedelta(hours=3), source="weather_observations", quality=70.0)
    insert_ledger(pg, "w-new", now - timedelta(hours=2), source="weather_observations", quality=60.0)
    pg.execute(
        "INSERT INTO ops.review_queue (batch_id, record_index, source, record_key, reasons, status) VALUES "
        "('m1', 1, 'meter_readings', 'a', 'r', 'pending'), ('m1', 2, 'meter_readings', 'b', 'r', 'pending'), "
        "('m1', 3, 'meter_readings', 'c', 'r', 'approved')"
    )
    pg.execute(
        "UPDATE ops.quarantine SET resolved_at = now() WHERE batch_id = 'm1' AND record_index = "
        "(SELECT min(record_index) FROM ops.quarantine WHERE batch_id = 'm1')"
    )
    pg.execute(
        "INSERT INTO ops.alerts (kind, severity, subject, dedup_key, summary, resolved_at) VALUES "
        "('run_failure', 'warning', 's', 'k1', 'x', NULL), ('run_failure', 'warning', 's', 'k2', 'x', NULL), "
        "('grid_state', 'critical', 'N2', 'k3', 'x', NULL), ('grid_state', 'critical', 'N1', 'k4', 'x', now())"
    )
    pg.execute(
        "INSERT INTO ops.grid_state_events (grid_node_id, started_at, ended_at, state, rule, area, start_day, "
        "peak_deviation_hz) VALUES "
        "('N1', now() - interval '3 hours', now() - interval '2 hours', 'emergency', 'r', 'GB', current_date, 1), "
        "('N2', now() - interval '2 hours', NULL, 'alert', 'r', 'GB', current_date, 0.3), "
        "('N3', now() - interval '3 hours', NULL, 'emergency', 'r', 'GB', current_date, 0.9), "
        "('N3', now() - interval '1 hour', NULL, 'alert', 'r', 'GB', current_date, 0.3)"
    )
    day = date(2026, 3, 1)
    with pg.cursor() as cur:
        cur.executemany(
            "INSERT INTO ops.vee_days (meter_id, local_date, timezone, interval_minutes, expected_intervals, "
            "actual_intervals, estimated_intervals, edited_intervals, missing_intervals, failed_intervals, "
            "flagged_intervals, actual_kwh, estimated_kwh, outage, estimation_skipped, billing_ready, rule_version) "
            "VALUES (%(m)s, %(d)s, 'UTC', 15, 96, %(a)s, %(e)s, 0, 0, 0, 0, 1, 1, false, false, true, 'v1')",
            [
                {"m": "M1", "d": day, "a": 90, "e": 6},
                {"m": "M2", "d": day, "a": 96, "e": 0},
                {"m": "M1", "d": day - timedelta(days=1), "a": 0, "e": 96},
            ],
        )
        # Anomalies of the newest scored day (a meter in Europe/Paris: its local day starts at 23:00 UTC).
        cur.execute(
            "INSERT INTO ops.meters (meter_id, segment, region, timezone) VALUES ('P1', 'r', 'x', 'Europe/Paris')"
        )
        cur.executemany(
            "INSERT INTO ops.anomaly_meter_days (meter_id, local_date, intervals, actual_kwh, expected_kwh, score, "
            "is_anomaly, baseline_anomalies, model_version) VALUES (%s, %s, %s, 1, 1, 0, false, 0, 'v')",
            [("P1", day, 3), ("U1", day, 2), ("U1", day - timedelta(days=1), 1)],
        )
        cur.executemany(
            "INSERT INTO ops.anomaly_scores (meter_id, reading_start, score, is_anomaly, model_version) "
            "VALUES (%s, %s, 0, %s, 'v')",
            [
                ("P1", datetime(2026, 2, 28, 23, 0, tzinfo=UTC), True),  # 1 March in Paris
                ("P1", datetime(2026, 3, 1, 12, 0, tzinfo=UTC), False),
                ("P1", datetime(2026, 3, 1, 22, 45, tzinfo=UTC), False),
                ("P1", datetime(2026, 3, 1, 23, 0, tzinfo=UTC), True),  # 2 March in Paris: not counted
                ("U1", datetime(2026, 3, 1, 0, 0, tzinfo=UTC), True),
                ("U1", datetime(2026, 3, 1, 23, 45, tzinfo=UTC), False),
                ("U1", datetime(2026, 2, 28, 12, 0, tzinfo=UTC), True),  # the day before
            ],
        )
    pg.commit()
    collector = PipelineCollector(connector(pg_resource))
    samples = scrape(collector)
    newest_reading = NOW - pd.Timedelta(days=1) + pd.Timedelta(minutes=15)  # meter_batch(6): two per meter
    assert (
        value(samples, "metrify_source_last_record_timestamp_seconds", source="meter_readings")
        == newest_reading.timestamp()
    )
    newest_grid = (NOW - pd.Timedelta(hours=2)).timestamp()
    assert value(samples, "metrify_source_last_record_timestamp_seconds", source="grid_status") == newest_grid
    assert (
        "metrify_source_last_record_timestamp_seconds",
        frozenset({("source", "weather_observations")}),
    ) not in samples
    last_batch = pg.execute(
        "SELECT max(processed_at) FROM ops.ingest_ledger WHERE source = 'meter_readings'"
    ).fetchone()
    assert (
        value(samples, "metrify_source_last_batch_timestamp_seconds", source="meter_readings")
        == last_batch[0].timestamp()
    )
    assert value(samples, "metrify_quality_score", source="meter_readings") == pytest.approx(
        (80 * 10 + 100 * 30) / 40
    )
    assert value(samples, "metrify_quality_score", source="weather_observations") == 60.0
    assert value(samples, "metrify_dlq_records", source="meter_readings") == 1  # 2 quarantined, 1 resolved
    assert value(samples, "metrify_review_pending", source="meter_readings") == 2
    assert value(samples, "metrify_review_pending", source="grid_status") == 0
    assert value(samples, "metrify_open_alerts", kind="run_failure", severity="warning") == 2
    assert value(samples, "metrify_open_alerts", kind="grid_state", severity="critical") == 1
    assert value(samples, "metrify_open_alerts", kind="run_failure", severity="info") == 0
    states = {
        (dict(ls)["grid_node_id"], dict(ls)["state"]): v
        for (n, ls), v in samples.items()
        if n == "metrify_grid_state"
    }
    current = {node for node, state in states if states[(node, state)] == 1}
    assert len(states) == 9 and len(current) == 3
    assert states[("N1", "normal")] == 1 and states[("N2", "alert")] == 1 and states[("N3", "emergency")] == 1
    assert value(samples, "metrify_vee_estimated_share") == pytest.approx(6 / 192)
    assert value(samples, "metrify_anomaly_rate") == pytest.approx(2 / 5)

    # The newest record is searched from the one found before; newer rows are found, deleted ones fall back.
    run_batch(pg, lake, "m3", [reading("M9", NOW - pd.Timedelta(hours=1), 0.2)])
    assert (
        value(scrape(collector), "metrify_source_last_record_timestamp_seconds", source="meter_readings")
        == (NOW - pd.Timedelta(hours=1)).timestamp()
    )
    pg.execute("DELETE FROM ops.meter_readings WHERE meter_id = 'M9'")
    pg.commit()
    assert (
        value(scrape(collector), "metrify_source_last_record_timestamp_seconds", source="meter_readings")
        == newest_reading.timestamp()
    )


def test_replays_move_neither_the_quality_score_nor_the_last_batch(
    pg: psycopg.Connection, pg_resource: PostgresResource
) -> None:
    """A dead-letter replay is no live batch: replaying still-malformed letters scores 0, and must
    neither drag the live feed's quality score down (MetrifyQualityScoreCritical would blame the feed)
    nor stand in for its last batch (a replay during an outage would silence the stale-feed alerts)."""
    now = datetime.now(UTC)
    weather, meter = "weather_observations", "meter_readings"
    # Live batches in the hour, then a replay of 17 still-malformed letters.
    insert_ledger(pg, "w-live", now - timedelta(minutes=20), (100, 99, 1, 0), source=weather, quality=99.0)
    insert_ledger(
        pg,
        "w-replay",
        now - timedelta(minutes=2),
        (17, 0, 17, 0),
        source=weather,
        origin="replay",
        quality=0.0,
    )
    # No live batch in the hour: the newest live one's score, not the replay's.
    insert_ledger(pg, "m-live", now - timedelta(hours=3), (10, 9, 1, 0), quality=95.0)
    insert_ledger(pg, "m-replay", now - timedelta(minutes=1), (5, 0, 5, 0), origin="replay", quality=0.0)
    insert_ledger(pg, "m-replay-old", now - timedelta(hours=2), (5, 0, 5, 0), origin="replay", quality=0.0)
    # Only replays: no live batch at all, so no series.
    insert_ledger(
        pg, "g-replay", now - timedelta(minutes=3), (2, 0, 2, 0), source="grid_status", origin="replay"
    )

    samples = scrape(PipelineCollector(connector(pg_resource), skip=("ledger",)))
    assert value(samples, "metrify_quality_score", source=weather) == 99.0
    assert value(samples, "metrify_quality_score", source=meter) == 95.0
    last_batch = "metrify_source_last_batch_timestamp_seconds"
    assert value(samples, last_batch, source=weather) == pytest.approx(
        (now - timedelta(minutes=20)).timestamp()
    )
    assert value(samples, last_batch, source=meter) == pytest.approx((now - timedelta(hours=3)).timestamp())
    for name in ("metrify_quality_score", last_batch):
        assert (name, frozenset({("source", "grid_status")})) not in samples, name


def test_the_live_gauges_read_the_ledger_through_its_source_index(pg: psycopg.Connection) -> None:
    """The quality score and last batch leave replays out by a filter on an index scan (source,
    processed_at or processed_at): on a ledger of history they read the last hour or the newest rows,
    never the rest."""
    from metrify_assets.observability import store_metrics

    pg.execute(
        "INSERT INTO ops.ingest_ledger (batch_id, source, origin, origin_ref, raw_key, records_in, accepted, "
        "flagged, quarantined, quality_score, processed_at) SELECT 'h' || i, "
        "(ARRAY['meter_readings', 'grid_status', 'weather_observations'])[i % 3 + 1], "
        "CASE WHEN i % 50 = 0 THEN 'replay' ELSE 'kafka' END, 'ref', 'raw', 10, 9, 0, 1, 90, "
        "now() - make_interval(mins => i) FROM generate_series(1, 30000) AS i"
    )
    pg.execute("ANALYZE ops.ingest_ledger")
    plans = []
    queries: list[str] = []

    class Explaining:
        def execute(self, query: object, params: object = None) -> object:
            queries.append(str(query))
            rows = pg.execute(f"EXPLAIN {query}", params).fetchall()  # type: ignore[call-overload]
            plans.append("\n".join(r[0] for r in rows))
            return pg.execute(query, params)  # type: ignore[call-overload]

    conn: psycopg.Connection = Explaining()  # type: ignore[assignment]
    # The last hour of a source with batches in it; its newest live batch.
    store_metrics.quality_score(conn, "meter_readings")
    store_metrics.last_batch_time(conn, "meter_readings")
    # No batch in the last hour: the fallback to the newest scored live batch.
    pg.execute(
        "DELETE FROM ops.ingest_ledger WHERE source = 'grid_status' AND processed_at > now() - interval '2 hours'"
    )
    store_metrics.quality_score(conn, "grid_status")
    assert len(plans) == 4
    for query, plan in zip(queries, plans, strict=True):
        assert "replay" in query
        assert "Index Scan" in plan and "Seq Scan" not in plan, plan


@dg.op
def succeed() -> None:
    pass


@dg.op
def fail() -> None:
    raise RuntimeError("expected")


@dg.job
def good_job() -> None:
    succeed()


@dg.job
def bad_job() -> None:
    fail()


def test_every_catalogued_metric_with_kafka_lag_and_dagster_runs(
    pg: psycopg.Connection, pg_resource: PostgresResource, kafka_resource: KafkaResource, tmp_path: Path
) -> None:
    lake = Lake(str(tmp_path / "lake"))
    run_batch(pg, lake, "b1", meter_batch(3))
    insert_ledger(pg, "s1", datetime.now(UTC), stages=dict.fromkeys(BATCH_STAGES, 0.01))
    pg.execute(
        "INSERT INTO ops.alerts (kind, severity, subject, dedup_key, summary) VALUES ('quality', 'info', 's', 'k', 'x')"
    )
    pg.execute(
        "INSERT INTO ops.vee_days (meter_id, local_date, timezone, interval_minutes, expected_intervals, "
        "actual_intervals, estimated_intervals, edited_intervals, missing_intervals, failed_intervals, "
        "flagged_intervals, actual_kwh, estimated_kwh, outage, estimation_skipped, billing_ready, rule_version) "
        "VALUES ('M1', current_date, 'UTC', 15, 4, 3, 1, 0, 0, 0, 0, 1, 1, false, false, true, 'v1')"
    )
    pg.execute(
        "INSERT INTO ops.anomaly_meter_days (meter_id, local_date, intervals, actual_kwh, expected_kwh, score, "
        "is_anomaly, baseline_anomalies, model_version) VALUES ('M0', %s, 1, 1, 1, 0, false, 0, 'v')",
        ((NOW - pd.Timedelta(days=1)).date(),),
    )
    pg.execute(
        "INSERT INTO ops.anomaly_scores (meter_id, reading_start, score, is_anomaly, model_version) "
        "VALUES ('M0', %s, 3, true, 'v')",
        ((NOW - pd.Timedelta(days=1)).to_pydatetime(),),
    )
    pg.execute(
        "INSERT INTO ops.grid_status (grid_node_id, measured_at, frequency_hz, record_version, batch_id) "
        "VALUES ('N1', now(), 50.0, 1, 'g')"
    )
    pg.commit()

    # Kafka: 5 + 3 messages in the meter topic's two partitions; the ingest group committed 2 and none.
    kafka_resource.ensure_topics(partitions=2)
    topic = kafka_resource.topic("meter_readings")
    with kafka_resource.producer() as producer:
        for partition, n in ((0, 5), (1, 3)):
            for i in range(n):
                producer.send(topic, f"m{i}".encode(), partition=partition)
    with pg_resource.connect() as conn:
        commit_range(kafka_resource, OffsetRange(topic, 0, 0, 2), conn)

    instance = dg.DagsterInstance.ephemeral()
    for job in (good_job, good_job, bad_job):
        job.execute_in_process(instance=instance, raise_on_error=False)

    collector = PipelineCollector(connector(pg_resource), kafka=kafka_resource, instance=lambda: instance)
    samples = scrape(collector)
    assert value(samples, "metrify_consumer_lag_messages", topic=topic, partition="0") == 3
    assert value(samples, "metrify_consumer_lag_messages", topic=topic, partition="1") == 3
    assert total(samples, "metrify_consumer_lag_messages", topic=kafka_resource.topic("grid_status")) == 0
    assert value(samples, "metrify_pipeline_runs_total", job="good_job", status="success") == 2
    assert value(samples, "metrify_pipeline_runs_total", job="bad_job", status="failure") == 1
    # Zeros for every status of a job seen: a job's first failure is an increase from 0 for increase().
    assert value(samples, "metrify_pipeline_runs_total", job="good_job", status="failure") == 0
    assert value(samples, "metrify_pipeline_runs_total", job="bad_job", status="canceled") == 0
    # A restart that finds every run settled (no lookback) counts them the same, in one grouped query.
    settled = PipelineCollector(connector(pg_resource), instance=lambda: instance, lookback=timedelta(0))
    assert total(scrape(settled), "metrify_pipeline_runs_total", job="good_job") == 2
    assert all(v == 0 for (n, _), v in samples.items() if n == "metrify_metrics_collect_errors_total")
    assert value(samples, "metrify_metrics_collect_seconds") > 0

    exposed = {name for name, _ in samples}
    for spec in PIPELINE:
        suffixes = ("_bucket", "_sum", "_count") if spec.kind == "histogram" else ("",)
        for suffix in suffixes:
            assert f"{spec.name}{suffix}" in exposed, f"{spec.name}{suffix} missing from the scrape"


def test_a_failing_collector_leaves_out_its_metrics_only(
    pg_resource: PostgresResource, caplog: pytest.LogCaptureFixture
) -> None:
    """A database without the `ops` schema (every table missing) and no reachable Kafka broker."""
    with pg_resource.connect(autocommit=True) as admin:
        admin.execute("DROP DATABASE IF EXISTS metrics_empty")
        admin.execute("CREATE DATABASE metrics_empty")
    empty_url = psycopg.conninfo.make_conninfo(pg_resource.get_url(), dbname="metrics_empty")

    @contextmanager
    def connect() -> Iterator[psycopg.Connection]:
        with psycopg.connect(empty_url, autocommit=True) as conn:
            yield conn

    dead = KafkaResource(bootstrap_servers="127.0.0.1:1", timeout_ms=1000)
    instance = dg.DagsterInstance.ephemeral()
    good_job.execute_in_process(instance=instance)
    collector = PipelineCollector(connect, kafka=dead, instance=lambda: instance)
    with caplog.at_level(logging.WARNING, logger="metrify_assets.observability.metrics"):
        scrape(collector)
        samples = scrape(collector)
    for name in ("ledger", "sources", "backlog", "meters", "grid", "alerts", "lifecycle", "kafka"):
        assert value(samples, "metrify_metrics_collect_errors_total", collector=name) == 2, name
    assert set(collector.failing) == {
        "ledger",
        "sources",
        "backlog",
        "meters",
        "grid",
        "alerts",
        "lifecycle",
        "kafka",
    }
    assert value(samples, "metrify_metrics_collect_errors_total", collector="dagster") == 0
    assert value(samples, "metrify_pipeline_runs_total", job="good_job", status="success") == 1
    assert total(samples, "metrify_records_received_total") == 0
    assert not any(n == "metrify_records_received_total" for n, _ in samples)
    warnings = [r for r in caplog.records if r.name == "metrify_assets.observability.metrics"]
    assert len(warnings) == 8  # one per failing collector, not one per scrape
