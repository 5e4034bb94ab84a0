"""`retouch_day`: a reviewer's decision stamps its record's day of the batch again, with a new seq from
the batches' own sequence, and leaves the batch's stamps as they were."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pandas as pd
import psycopg
import pytest

from metrify_assets.contracts import GRID_STATUS, METER_READINGS
from metrify_assets.ingestion.batch import BatchSpec, process_batch
from metrify_assets.resources.lake import Lake
from metrify_assets.storage.days import retouch_day


def _days(pg: psycopg.Connection, batch_id: str, relation: str = "ops.ingest_days") -> dict[date, int]:
    rows = pg.execute(f"SELECT day, max(seq) FROM {relation} WHERE batch_id = %s GROUP BY day", (batch_id,))
    return dict(rows.fetchall())


@pytest.mark.postgres
def test_a_decision_stamps_its_records_local_day_again(pg: psycopg.Connection) -> None:
    pg.execute(
        "INSERT INTO ops.meters (meter_id, segment, region, timezone) "
        "VALUES ('RT-AKL', 'residential', 'nz', 'Pacific/Auckland') ON CONFLICT DO NOTHING"
    )
    for batch, source in (("rt-m", "meter_readings"), ("rt-g", "grid_status")):
        pg.execute(
            "INSERT INTO ops.ingest_days (batch_id, source, day, records) "
            "SELECT %s, %s, d::date, 10 FROM generate_series('2026-03-01'::date, '2026-03-03', '1 day') d",
            (batch, source),
        )
    pg.commit()
    before = {batch: _days(pg, batch) for batch in ("rt-m", "rt-g")}

    # 23:30 UTC on the 1st is the 2nd in Auckland (UTC+13): the meter's local day is the one stamped.
    retouch_day(
        pg, METER_READINGS, "rt-m", {"meter_id": "RT-AKL", "reading_start": "2026-03-01T23:30:00+00:00"}
    )
    # A grid sample falls on its UTC day; an unregistered meter's reading too.
    retouch_day(pg, GRID_STATUS, "rt-g", {"grid_node_id": "N1", "measured_at": "2026-03-01T23:30:00Z"})
    retouch_day(
        pg, METER_READINGS, "rt-m", {"meter_id": "RT-NONE", "reading_start": "2026-03-03T23:30:00+00:00"}
    )
    # The meter moved to Honolulu (UTC-10) after the ingest: its reading now falls on 28 February, a
    # day the batch did not record, and the one the marts now put it on.
    pg.execute("UPDATE ops.meters SET timezone = 'Pacific/Honolulu' WHERE meter_id = 'RT-AKL'")
    retouch_day(
        pg, METER_READINGS, "rt-m", {"meter_id": "RT-AKL", "reading_start": "2026-03-01T05:00:00+00:00"}
    )
    pg.commit()

    assert {b: _days(pg, b) for b in before} == before, "the batches' own stamps stay"
    after = {batch: _days(pg, batch, "ops.touched_days") for batch in ("rt-m", "rt-g")}
    newest = max(seq for days in before.values() for seq in days.values())
    stamped = {(b, d) for b in after for d in after[b] if after[b][d] != before[b].get(d)}
    assert stamped == {
        ("rt-m", date(2026, 3, 2)),
        ("rt-g", date(2026, 3, 1)),
        ("rt-m", date(2026, 3, 3)),
        ("rt-m", date(2026, 2, 28)),
    }
    assert all(after[b][d] > newest for b, d in stamped), "a new seq, after every earlier one"


@pytest.mark.postgres
def test_a_batch_that_stored_nothing_is_in_the_report_but_touches_no_day(
    pg: psycopg.Connection, tmp_path: Path
) -> None:
    """Every record quarantined: the batch keeps its 0-record row on its arrival day (the day's
    quality report and VEE's lookup of quarantined readings find it there), but the days `metrify
    run` and `late_days_sensor` rebuild (`ops.touched_days` rows `stored`) have none of it."""
    lake = Lake(str(tmp_path / "lake"))
    now = pd.Timestamp("2026-04-01T00:00:00Z")
    good = json.dumps(
        {"meter_id": "M1", "reading_start": "2026-03-30T10:00:00Z", "interval_minutes": 15, "energy_kwh": 0.4}
    )
    for batch_id, messages in (("all-bad", ["{broken", '{"meter_id": 3}']), ("some-good", [good, "{x"])):
        spec = BatchSpec(METER_READINGS, batch_id, "landing", batch_id, date(2026, 3, 31))
        process_batch(spec, messages, [1] * len(messages), lake, pg, now)
        pg.commit()
    assert pg.execute("SELECT day, records FROM ops.ingest_days WHERE batch_id = 'all-bad'").fetchall() == [
        (date(2026, 3, 31), 0)
    ]
    stored = "(SELECT * FROM ops.touched_days WHERE stored)"
    assert set(_days(pg, "all-bad", stored)) == set()
    assert set(_days(pg, "some-good", stored)) == {date(2026, 3, 30)}
    # Its seq stays in the view, so the readers' cursors pass it instead of waiting at a gap.
    assert _days(pg, "all-bad", "ops.touched_days") == _days(pg, "all-bad")


@pytest.mark.postgres
def test_a_batch_recorded_again_draws_no_seq(pg: psycopg.Connection, tmp_path: Path) -> None:
    """A batch processed again (a landing file landed twice, a range re-run) keeps its stamps and
    takes no number: a drawn one would leave a gap in `seq` that holds the cursors of `metrify run`
    and `late_days_sensor` back (`late_days.settled_cursor`), so a second `metrify run` would rebuild again."""
    lake = Lake(str(tmp_path / "lake"))
    now = pd.Timestamp("2026-04-01T00:00:00Z")
    good = json.dumps(
        {"meter_id": "M1", "reading_start": "2026-03-30T10:00:00Z", "interval_minutes": 15, "energy_kwh": 0.4}
    )
    batches = {"stored": [good], "all-bad": ["{broken"]}
    for _ in range(2):
        for batch_id, messages in batches.items():
            spec = BatchSpec(METER_READINGS, batch_id, "landing", batch_id, date(2026, 3, 31))
            process_batch(spec, messages, [1] * len(messages), lake, pg, now)
            pg.commit()
    spec = BatchSpec(METER_READINGS, "next", "landing", "next", date(2026, 3, 31))
    process_batch(spec, [good.replace("10:00", "10:15")], [2], lake, pg, now)
    pg.commit()
    seqs = [seq for (seq,) in pg.execute("SELECT seq FROM ops.touched_days ORDER BY seq").fetchall()]
    assert len(seqs) == 3
    assert seqs == list(range(seqs[0], seqs[0] + 3)), f"no gap: {seqs}"
