"""The exporter's counters never go down nor count a batch twice when batches are recorded again
(a dead-letter replay, a Kafka batch re-run after a failed offset commit) or runs' tags change; the
ledger's first-scrape seed is not cut by the scrape's statement timeout; the dead-letter backlog
counts only what a replay could accept, through its partial index."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta

import dagster as dg
import psycopg
import pytest

from metrify_assets.observability.metrics import PipelineCollector
from metrify_assets.observability.tally import WindowedTally
from metrify_assets.quality.quarantine import QuarantineRow, quarantine
from metrify_assets.quality.replayable import REPLAYABLE_UNRESOLVED, replayable
from metrify_assets.resources import PostgresResource
from metrify_assets.storage.migrate import migrations
from metrify_assets.storage.writes import LedgerEntry, record_batch
from tests.observability.test_metrics import connector, good_job, insert_ledger, scrape, value

pytestmark = pytest.mark.postgres
SOURCE = {"source": "meter_readings"}


def entry(batch_id: str, accepted: int, quarantined: int) -> LedgerEntry:
    return LedgerEntry(
        batch_id,
        "meter_readings",
        "kafka",
        "ref",
        "raw",
        accepted + quarantined,
        accepted,
        0,
        quarantined,
        90.0,
        None,
    )


def test_a_tally_row_read_again_never_lowers_a_total_nor_comes_back_once_settled() -> None:
    now = datetime(2026, 3, 1, 12, 0)
    tally = WindowedTally()
    tally.seed([(("k",), 10.0)], now - timedelta(minutes=15))
    tally.update([("b1", now, {("k",): 5.0, ("j",): 1.0})], now - timedelta(minutes=15))
    tally.update([("b1", now, {("k",): 3.0, ("i",): 2.0})], now - timedelta(minutes=15))
    assert tally.totals() == {("k",): 15.0, ("j",): 1.0, ("i",): 2.0}
    tally.update([], now + timedelta(minutes=1))  # b1 settles
    tally.update([("b1", now, {("k",): 5.0, ("j",): 1.0})], now + timedelta(minutes=2))
    assert tally.totals() == {("k",): 15.0, ("j",): 1.0, ("i",): 2.0}


def test_batches_recorded_again_are_counted_once_and_never_lower_a_counter(
    pg: psycopg.Connection, pg_resource: PostgresResource
) -> None:
    now = datetime.now(UTC)
    insert_ledger(pg, "old", now - timedelta(days=2), counts=(10, 8, 2, 0))
    insert_ledger(pg, "legacy", now - timedelta(days=3), counts=(10, 8, 2, 0))
    pg.execute("UPDATE ops.ingest_ledger SET recorded_at = NULL WHERE batch_id = 'legacy'")  # before 0015
    record_batch(pg, entry("new", 8, 2), {"read": 0.004})
    pg.commit()
    collector = PipelineCollector(connector(pg_resource))
    first = scrape(collector)
    assert value(first, "metrify_records_received_total", **SOURCE) == 30
    assert value(first, "metrify_records_quarantined_total", **SOURCE) == 6

    # Settled batches replayed now (processed_at moves) are not counted again; a recent one replayed
    # with fewer quarantined keeps the counters where they were, and its first stage timings.
    legacy = pg.execute("SELECT processed_at FROM ops.ingest_ledger WHERE batch_id = 'legacy'").fetchone()
    for batch_id in ("old", "legacy"):
        record_batch(pg, entry(batch_id, 9, 1), {"read": 0.004})
    record_batch(pg, entry("new", 9, 1), {"read": 50.0})
    pg.commit()
    rows = pg.execute(
        "SELECT batch_id, processed_at > recorded_at, stage_seconds FROM ops.ingest_ledger ORDER BY 1"
    ).fetchall()
    # No timings before: the replay's.
    assert rows == [(b, True, {"read": 0.004}) for b in ("legacy", "new", "old")]
    # A row from before migration 0015 keeps its first processed_at as when it was recorded.
    assert (
        pg.execute("SELECT recorded_at FROM ops.ingest_ledger WHERE batch_id = 'legacy'").fetchone() == legacy
    )
    later = scrape(collector)
    assert value(later, "metrify_records_received_total", **SOURCE) == 30
    assert value(later, "metrify_records_accepted_total", **SOURCE) == 25  # new's 8 -> 9
    assert value(later, "metrify_records_quarantined_total", **SOURCE) == 6  # not 5: never down
    assert value(later, "metrify_batches_total", source="meter_readings", origin="kafka") == 3
    read = {"stage": "read", **SOURCE}
    assert value(later, "metrify_batch_stage_duration_seconds_bucket", le="0.005", **read) == 1
    assert value(later, "metrify_batch_stage_duration_seconds_count", **read) == 1  # the others: settled


def test_a_run_whose_tags_change_after_it_settled_is_not_counted_again(pg_resource: PostgresResource) -> None:
    instance = dg.DagsterInstance.ephemeral()
    result = good_job.execute_in_process(instance=instance)
    collector = PipelineCollector(connector(pg_resource), instance=lambda: instance, lookback=timedelta(0))
    assert value(scrape(collector), "metrify_pipeline_runs_total", job="good_job", status="success") == 1
    instance.add_run_tags(result.run_id, {"note": "looked at"})  # bumps the run's update_timestamp
    assert value(scrape(collector), "metrify_pipeline_runs_total", job="good_job", status="success") == 1


def test_the_seed_is_not_cut_by_the_scrape_timeout(
    pg: psycopg.Connection, pg_resource: PostgresResource, caplog: pytest.LogCaptureFixture
) -> None:
    """The seed waits 0.5 s on a lock, past a 100 ms scrape timeout: it still completes."""
    insert_ledger(pg, "old", datetime.now(UTC) - timedelta(days=2))
    collector = PipelineCollector(connector(pg_resource), statement_timeout_ms=100)
    locked, release = threading.Event(), threading.Event()

    def hold_lock() -> None:
        with pg_resource.connect() as conn:
            conn.execute("LOCK TABLE ops.ingest_ledger IN ACCESS EXCLUSIVE MODE")
            locked.set()
            release.wait(5)
            conn.rollback()

    holder = threading.Thread(target=hold_lock)
    holder.start()
    locked.wait(5)
    threading.Timer(0.5, release.set).start()
    with caplog.at_level(logging.INFO, logger="metrify_assets.observability.ledger_metrics"):
        samples = scrape(collector)
    holder.join()
    assert value(samples, "metrify_metrics_collect_errors_total", collector="ledger") == 0
    assert value(samples, "metrify_records_received_total", **SOURCE) == 10
    seeded = [r.getMessage() for r in caplog.records if "seeded" in r.getMessage()]
    assert len(seeded) == 1 and float(seeded[0].split(" in ")[1].removesuffix(" s")) >= 0.4


def test_the_dead_letter_backlog_counts_replayable_records_through_its_index(
    pg: psycopg.Connection, pg_resource: PostgresResource
) -> None:
    reasons = [
        "negative_energy",
        "duplicate_exact",
        "malformed:bad_type,duplicate_conflict",
        "review_rejected:spike",
        "malformed:timestamp_without_offset:reading_start",
    ]
    quarantine(pg, "meter_readings", "b1", [QuarantineRow(i, "{}", r) for i, r in enumerate(reasons)])
    pg.commit()
    assert [replayable(r) for r in reasons] == [True, False, False, False, False]
    assert value(scrape(PipelineCollector(connector(pg_resource))), "metrify_dlq_records", **SOURCE) == 1
    # The query's predicate is the partial index's, so the planner can answer from the index alone.
    migration = [m for m in migrations() if "quarantine_replayable" in m.sql][-1].sql
    assert f"WHERE {REPLAYABLE_UNRESOLVED};" in " ".join(migration.split())
    pg.execute("SET LOCAL enable_seqscan = off")
    pg.execute("DROP INDEX ops.quarantine_unresolved")  # rolled back: the other candidate, on a tiny table
    plan = pg.execute(
        f"EXPLAIN SELECT source, count(*) FROM ops.quarantine WHERE {REPLAYABLE_UNRESOLVED} GROUP BY source"
    ).fetchall()
    pg.rollback()
    assert "quarantine_replayable" in " ".join(line for (line,) in plan)
