"""Grid samples awaiting review on a real PostgreSQL: two samples the record rules flagged
`frequency_out_of_range` (a sensor fault, as `metrify simulate` injects them) make no emergency and
no deviation figure while pending, are counted as left out, and count again once a reviewer approves
them: the approval stamps their day for a rebuild, and the day run again has the emergency."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pandas as pd
import psycopg
import pytest

from metrify_assets.contracts import GRID_STATUS
from metrify_assets.grid.store import run_days
from metrify_assets.ingestion.batch import BatchSpec, process_batch
from metrify_assets.quality import review
from metrify_assets.resources.lake import Lake
from tests.grid.test_assets import CONFIG, query

pytestmark = pytest.mark.postgres

DAY = date(2026, 3, 17)
NODE = "GN-REVIEW-1"
T0 = pd.Timestamp("2026-03-17T10:00:00Z")
FAULT = -0.7687  # Hz: beyond the statutory 500 mHz, so flagged; plausible, so stored


def ingest(pg: psycopg.Connection, tmp_path: Path) -> str:
    """An hour of 1-minute samples at 50 Hz but for 10:30 and 10:31 at 50 - 0.7687 Hz, through the
    ingestion path (the rules flag those two and queue them for review) -> the batch id."""
    times = [T0 + pd.Timedelta(minutes=m) for m in range(60)]
    messages = [
        json.dumps(
            {
                "grid_node_id": NODE,
                "measured_at": t.isoformat(),
                "frequency_hz": 50.0 + (FAULT if m in (30, 31) else 0),
            }
        )
        for m, t in enumerate(times)
    ]
    spec = BatchSpec(GRID_STATUS, "grid-review-faults", "landing", "grid-review.jsonl", DAY)
    now = pd.Timestamp("2026-03-18T00:00:00Z")
    done = process_batch(
        spec, messages, [1] * len(messages), Lake(str(tmp_path / "lake")), pg, now, backfill=True
    )
    pg.commit()
    assert (done.ledger.accepted, done.ledger.flagged) == (60, 2)
    return spec.batch_id


def node_events(pg: psycopg.Connection) -> list[tuple[object, ...]]:
    return [
        tuple(r)
        for r in pg.execute(
            "SELECT state, rule, started_at, ended_at, round(peak_deviation_hz::numeric, 4)::float, excluded_samples "
            "FROM ops.grid_state_events WHERE grid_node_id = %s ORDER BY started_at",
            (NODE,),
        ).fetchall()
    ]


def hour(pg: psycopg.Connection) -> pd.Series:
    frame = query(pg, "SELECT * FROM ops.grid_stability WHERE grid_node_id = %s", (NODE,))
    assert len(frame) == 1
    return frame.iloc[0]


def test_flagged_samples_pending_review_make_no_emergency_until_a_reviewer_approves_them(
    pg: psycopg.Connection, tmp_path: Path
) -> None:
    batch_id = ingest(pg, tmp_path)
    queued = pg.execute(
        "SELECT record_index, reasons, status FROM ops.review_queue WHERE batch_id = %s ORDER BY record_index",
        (batch_id,),
    ).fetchall()
    assert [(r, s) for _, r, s in queued] == [("frequency_out_of_range", "pending")] * 2

    run = run_days(pg, DAY, DAY, CONFIG)
    assert node_events(pg) == [] and run.events.empty
    pending = hour(pg)
    assert (pending["sample_count"], pending["excluded_samples"], pending["worst_state"]) == (60, 2, "normal")
    assert pending["max_abs_deviation_hz"] == pytest.approx(0, abs=1e-9)
    assert pending["max_abs_steady_state_hz"] == pytest.approx(0, abs=1e-9)
    assert pending["emergency_minutes"] == 0 and pending["risk_score"] == pytest.approx(0, abs=1e-9)

    seq = pg.execute("SELECT coalesce(max(seq), 0) FROM ops.touched_days").fetchone()[0]  # type: ignore[index]
    for index, _, _ in queued:
        review.approve(pg, batch_id, index, "alice", "a real excursion: the neighbouring substation saw it")
    stamped = pg.execute(
        "SELECT DISTINCT source, day FROM ops.touched_days WHERE seq > %s", (seq,)
    ).fetchall()
    assert stamped == [("grid_status", DAY)]  # late_days_sensor runs refresh_job, grid_stability with it

    run_days(pg, DAY, DAY, CONFIG)
    at = T0 + pd.Timedelta(minutes=31)  # the median of the last three samples is the fault from 10:31
    assert node_events(pg) == [
        (
            "emergency",
            "steady_state_beyond_max",
            at.to_pydatetime(),
            (at + pd.Timedelta(minutes=2)).to_pydatetime(),
            FAULT,
            0,
        )
    ]
    approved = hour(pg)
    assert (approved["excluded_samples"], approved["worst_state"]) == (0, "emergency")
    assert approved["max_abs_deviation_hz"] == pytest.approx(-FAULT)
    assert approved["emergency_minutes"] == pytest.approx(2.0)

    review.reopen(pg, batch_id, queued[0][0], "alice", "asked for a second look")
    run_days(pg, DAY, DAY, CONFIG)  # one of the two is pending again: alone it is noise
    assert node_events(pg) == [] and hour(pg)["excluded_samples"] == 1
