"""Grid samples awaiting review on a real PostgreSQL, through ingestion: the record rules flag every
sample beyond the statutory 500 mHz and queue it. Two sensor faults in a row make no emergency while
pending and are counted as left out; a real excursion beyond the band stands while pending; an
approval stamps the day for a rebuild, and the day run again counts the approved samples."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pandas as pd
import psycopg
import pytest

from metrify_assets.contracts import GRID_STATUS
from metrify_assets.grid.analysis import GridConfig
from metrify_assets.grid.store import run_days
from metrify_assets.ingestion.batch import BatchSpec, process_batch
from metrify_assets.quality import review
from metrify_assets.resources.lake import Lake
from tests.grid.test_assets import query

pytestmark = pytest.mark.postgres

DAY = date(2026, 3, 17)
T0 = pd.Timestamp("2026-03-17T10:00:00Z")
FAULTY, EXCURSION = "GN-REVIEW-FAULT", "GN-REVIEW-REAL"
FAULT = -0.7687  # Hz: beyond the statutory 500 mHz, so flagged; plausible, so stored
CONFIG = GridConfig(default_area="great_britain")


def deviation(node: str, minute: int) -> float:
    """FAULTY: two faults at 10:30 and 10:31; EXCURSION: 600 mHz low from 10:20 to 10:24."""
    if node == FAULTY:
        return FAULT if minute in (30, 31) else 0.0
    return -0.6 if 20 <= minute < 25 else 0.0


def ingest(pg: psycopg.Connection, tmp_path: Path) -> str:
    """An hour of 1-minute samples of both nodes through the ingestion path -> the batch id."""
    messages = [
        json.dumps(
            {
                "grid_node_id": node,
                "measured_at": (T0 + pd.Timedelta(minutes=m)).isoformat(),
                "frequency_hz": round(50.0 + deviation(node, m), 4),
            }
        )
        for node in (FAULTY, EXCURSION)
        for m in range(60)
    ]
    spec = BatchSpec(GRID_STATUS, "grid-review-faults", "landing", "grid-review.jsonl", DAY)
    now = pd.Timestamp("2026-03-18T00:00:00Z")
    done = process_batch(
        spec, messages, [1] * len(messages), Lake(str(tmp_path / "lake")), pg, now, backfill=True
    )
    pg.commit()
    assert (done.ledger.accepted, done.ledger.flagged) == (120, 7)
    return spec.batch_id


def node_events(pg: psycopg.Connection, node: str) -> list[tuple[object, ...]]:
    return [
        tuple(r)
        for r in pg.execute(
            "SELECT state, rule, started_at, ended_at, round(peak_deviation_hz::numeric, 4)::float "
            "FROM ops.grid_state_events WHERE grid_node_id = %s ORDER BY started_at",
            (node,),
        ).fetchall()
    ]


def hour(pg: psycopg.Connection, node: str) -> pd.Series:
    frame = query(pg, "SELECT * FROM ops.grid_stability WHERE grid_node_id = %s", (node,))
    assert len(frame) == 1
    return frame.iloc[0]


def test_sensor_faults_pending_review_make_no_emergency_and_a_real_excursion_stands(
    pg: psycopg.Connection, tmp_path: Path
) -> None:
    batch_id = ingest(pg, tmp_path)
    queued = pg.execute(
        "SELECT record_index, record_key, reasons, status FROM ops.review_queue WHERE batch_id = %s "
        "ORDER BY record_index",
        (batch_id,),
    ).fetchall()
    faults = [index for index, key, _, _ in queued if key.startswith(FAULTY)]
    assert len(faults) == 2 and {(r, s) for *_, r, s in queued} == {("frequency_out_of_range", "pending")}

    run_days(pg, DAY, DAY, CONFIG)
    assert node_events(pg, FAULTY) == []
    pending = hour(pg, FAULTY)
    assert (pending["sample_count"], pending["excluded_samples"], pending["worst_state"]) == (60, 2, "normal")
    assert pending["covered_minutes"] == 58
    assert pending["max_abs_deviation_hz"] == pytest.approx(0, abs=1e-9)
    assert pending["max_abs_steady_state_hz"] == pytest.approx(0, abs=1e-9)
    assert pending["risk_score"] == pytest.approx(0, abs=1e-9)
    # Five flagged samples in a row, each with neighbours deviating with it: a real emergency.
    emergency = ("emergency", "steady_state_beyond_max", T0 + pd.Timedelta(minutes=21))
    assert node_events(pg, EXCURSION) == [(*emergency, T0 + pd.Timedelta(minutes=26), -0.6)]
    assert hour(pg, EXCURSION)["excluded_samples"] == 0

    seq = pg.execute("SELECT coalesce(max(seq), 0) FROM ops.touched_days").fetchone()[0]  # type: ignore[index]
    for index in faults:
        review.approve(pg, batch_id, index, "alice", "a real excursion: the neighbouring substation saw it")
    stamped = pg.execute(
        "SELECT DISTINCT source, day FROM ops.touched_days WHERE seq > %s", (seq,)
    ).fetchall()
    assert stamped == [("grid_status", DAY)]  # late_days_sensor runs refresh_job, grid_stability with it

    run_days(pg, DAY, DAY, CONFIG)
    at = T0 + pd.Timedelta(minutes=31)  # approved, they count: the median of the last three is theirs
    assert node_events(pg, FAULTY) == [
        ("emergency", "steady_state_beyond_max", at, at + pd.Timedelta(minutes=2), FAULT)
    ]
    approved = hour(pg, FAULTY)
    assert (approved["excluded_samples"], approved["worst_state"]) == (0, "emergency")
    assert approved["max_abs_deviation_hz"] == pytest.approx(-FAULT)

    review.reopen(pg, batch_id, faults[0], "alice", "asked for a second look")
    run_days(pg, DAY, DAY, CONFIG)  # pending again, with one neighbour deviating with it: a fault
    assert node_events(pg, FAULTY) == [] and hour(pg, FAULTY)["excluded_samples"] == 1
