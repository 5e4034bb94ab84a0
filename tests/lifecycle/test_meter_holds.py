"""A meter's legal hold keeps that meter's rows of the quarantine and the `ops` tables, not every row
of its days: rows of other meters, or naming none, go by their retention unless a dataset-wide hold
keeps them (real PostgreSQL, a local lake)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from metrify_assets.lifecycle import holds, retention
from metrify_assets.lifecycle.policy import Policy
from metrify_assets.resources.lake import Lake

pytestmark = pytest.mark.postgres

DAY = date(2025, 2, 10)  # when the rows were quarantined, decided, failed
OTHER_DAY = date(2025, 2, 11)
HELD, FREE = "M-QH-HELD", "M-QH-FREE"
QUARANTINED = {
    "qh-held": ("meter_readings", json.dumps({"meter_id": HELD, "energy_kwh": -1})),
    "qh-held-malformed": ("meter_readings", '{"meter_id":"' + HELD + '", "energy_kwh": '),
    "qh-held-in-batch": (
        "meter_readings",
        json.dumps({"records": [{"meter_id": FREE}, {"meter_id": HELD}]}),
    ),
    "qh-free": ("meter_readings", json.dumps({"meter_id": FREE, "energy_kwh": -1})),
    "qh-no-meter": ("meter_readings", "{broken"),
    "qh-grid": ("grid_status", json.dumps({"grid_node_id": HELD, "frequency_hz": 70})),
}


def seed(conn: psycopg.Connection) -> None:
    at = datetime.combine(DAY, datetime.min.time(), UTC) + timedelta(hours=9)
    conn.cursor().executemany(
        "INSERT INTO ops.quarantine (batch_id, record_index, source, payload, reasons, quarantined_at) "
        "VALUES (%s, 0, %s, %s, 'negative_energy', %s)",
        [(batch, source, payload, at) for batch, (source, payload) in QUARANTINED.items()],
    )
    conn.execute(
        "INSERT INTO ops.quarantine (batch_id, record_index, source, payload, reasons, quarantined_at) "
        "VALUES ('qh-dataset-held', 0, 'meter_readings', '{broken', 'malformed', %s)",
        (at + timedelta(days=1),),
    )
    conn.cursor().executemany(
        "INSERT INTO ops.review_queue (batch_id, record_index, source, record_key, reasons, status, "
        "decided_by, decided_at) VALUES (%s, 0, %s, %s, 'voltage_range', 'approved', 'qa', %s)",
        [
            ("rq-held", "meter_readings", f"{HELD}|2025-02-09T10:00:00+00:00", at),
            ("rq-free", "meter_readings", f"{FREE}|2025-02-09T10:00:00+00:00", at),
            ("rq-grid", "grid_status", f"{HELD}|2025-02-09T10:00:00+00:00", at),
        ],
    )
    conn.execute(
        "INSERT INTO ops.run_alerts (run_id, job_name, error_type, message, failed_at) "
        "VALUES ('qh-run', 'refresh_job', 'ValueError', 'boom', %s)",
        (at,),
    )
    conn.commit()


def left(conn: psycopg.Connection) -> dict[str, set[str]]:
    def ids(sql: str) -> set[str]:
        return {r[0] for r in conn.execute(sql).fetchall()}

    return {
        "quarantine": ids("SELECT batch_id FROM ops.quarantine"),
        "review_queue": ids("SELECT batch_id FROM ops.review_queue"),
        "run_alerts": ids("SELECT run_id FROM ops.run_alerts"),
    }


def test_a_meters_hold_keeps_only_its_quarantine_and_review_rows(
    pg: psycopg.Connection, tmp_path: Path
) -> None:
    """A trial's hold on one meter (dataset all) kept every quarantine row, review item and run alert
    of its days; now the meter's own rows stay (its malformed payload, and a batch dead-lettered whole
    that holds a reading of it, included) and the rest go. A hold on the quarantine without a meter
    still keeps a row that names no meter."""
    seed(pg)
    holds.add(pg, holds.ALL, DAY, DAY, "dispute 77", "counsel", meter_id=HELD)
    holds.add(pg, "quarantine", OTHER_DAY, OTHER_DAY, "audit 78", "counsel")
    pg.commit()
    lake = Lake(str(tmp_path / "lake"))
    policy = Policy(quarantine_days=30, ops_days=30)
    today, now = DAY + timedelta(days=100), datetime(2025, 5, 21, tzinfo=UTC)

    dry = retention.apply(pg, lake, policy, today, now, dry_run=True)
    planned = {o.detail: o.rows for o in dry.outcomes if o.action == "would expire"}
    assert planned == {"ops.quarantine": 3, "ops.review_queue": 2, "ops.run_alerts": 1}
    assert len(left(pg)["quarantine"]) == len(QUARANTINED) + 1  # a dry run deletes nothing

    retention.apply(pg, lake, policy, today, now)
    assert left(pg) == {
        "quarantine": {"qh-held", "qh-held-malformed", "qh-held-in-batch", "qh-dataset-held"},
        "review_queue": {"rq-held"},
        "run_alerts": set(),
    }
