"""A rebuild from raw on a real PostgreSQL: batches ingested through the real path (landing files,
Kafka offset ranges, a dead-letter replay), then the range's rows rebuilt from the lake alone: equal to
the rows first written (bookkeeping included), rolled back to an earlier state with `as_of`,
idempotent, and refused (nothing changed) when a hold, an archived day or a missing raw batch is in
the way."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import psycopg
import pytest

from metrify_assets.contracts import GRID_STATUS, METER_READINGS
from metrify_assets.ingestion import dead_letters, replay
from metrify_assets.ingestion.assets import landing_spec
from metrify_assets.ingestion.batch import BatchSpec, process_batch
from metrify_assets.ingestion.kafka.ranges import OffsetRange
from metrify_assets.ingestion.landing import land_lines
from metrify_assets.lifecycle import holds
from metrify_assets.lifecycle.rollback import RebuildResult, RollbackError, describe, rebuild_from_raw
from metrify_assets.meters.days import day_params, readings_of_days_sql
from metrify_assets.resources.lake import Lake

pytestmark = pytest.mark.postgres
FIRST, LAST = date(2026, 11, 30), date(2026, 12, 1)
# The first batch's ingest clock: a reading at 20:00 that day looked like the future (quarantined);
# a dead-letter replay with the real clock takes it in later.
B1_NOW = pd.Timestamp("2026-12-01T12:00:00Z")
SEQ1 = B1_NOW.value // 1000  # landing sequence: microseconds at landing, the rows' record_version
SEQ2 = SEQ1 + 3_600_000_000

Row = tuple[object, ...]


def reading(meter: str, start: str, kwh: float, **extra: object) -> dict[str, object]:
    return {"meter_id": meter, "reading_start": start, "interval_minutes": 15, "energy_kwh": kwh, **extra}


def line(record: dict[str, object]) -> str:
    return json.dumps(record)


B1 = [
    line(
        reading(
            "M-LON", "2026-11-30T00:00:00Z", 0.5, register_kwh=100.5, voltage_v=231.0, power_factor=0.97,
            status_flags=["estimated"], source="headend-profile",
        )
    ),
    line(reading("M-LON", "2026-11-30T00:15:00Z", 0.6)),
    line(reading("M-LON", "2026-11-30T00:30:00Z", 0.7, voltage_v=260.0)),  # flagged: voltage out of range
    line(reading("M-LON", "2026-11-30T00:45:00Z", -0.2)),  # rejected: negative import
    line(reading("M-LON", "2026-12-01T20:00:00Z", 0.4)),  # rejected then: in the future (replayed later)
    json.dumps(
        {
            "records": [
                reading("M-NYC", "2026-11-30T04:45:00Z", 1.0),  # New York's 29 November: out of range
                reading("M-NYC", "2026-11-30T12:00:00Z", 1.1),
            ]
        }
    ),
    line(reading("M-LON", "2026-11-29T23:45:00Z", 0.3)),  # 29 November: out of range
    "{broken",
]  # fmt: skip
B2 = [
    line(reading("M-LON", "2026-11-30T00:15:00Z", 0.65)),  # newer versions of three readings
    line(reading("M-NYC", "2026-11-30T12:00:00Z", 1.15)),
    line(reading("M-LON", "2026-11-29T23:45:00Z", 0.35)),  # ... one out of the range
    line(reading("M-LON", "2026-11-30T01:00:00Z", 0.55)),  # a new reading
    line(reading("M-NYC", "2026-12-02T04:00:00Z", 1.2)),  # New York's 1 December: in range
]


def land_and_ingest(
    conn: psycopg.Connection, lake: Lake, landing: Path, lines: list[str], seq: int, now: pd.Timestamp
) -> str:
    """As the landing sensor's run does: land the file, read it back, process it, commit."""
    landed = land_lines(landing, METER_READINGS.source, lines, seq=seq)
    messages = landed.path.read_text().splitlines()
    spec = landing_spec(METER_READINGS, landed)
    process_batch(spec, messages, [landed.seq] * len(messages), lake, conn, now, received_at=now)
    conn.commit()
    return spec.batch_id


def meter_rows(conn: psycopg.Connection) -> dict[Row, Row]:
    """Every stored reading, all columns (ingested_at included), by key."""
    rows = conn.execute("SELECT * FROM ops.meter_readings").fetchall()
    return {row[:2]: row for row in rows}


def range_keys(conn: psycopg.Connection) -> set[Row]:
    return {
        tuple(r)
        for r in conn.execute(
            readings_of_days_sql("r.meter_id, r.reading_start"), day_params(FIRST, LAST)
        ).fetchall()
    }


def processed_at(conn: psycopg.Connection, batch_id: str) -> datetime:
    row = conn.execute(
        "SELECT processed_at FROM ops.ingest_ledger WHERE batch_id = %s", (batch_id,)
    ).fetchone()
    assert row is not None
    return row[0]


def rebuild(
    conn: psycopg.Connection, lake: Lake, as_of: datetime | None = None, dry_run: bool = False
) -> RebuildResult:
    seen: list[str] = []
    result = rebuild_from_raw(
        conn, lake, METER_READINGS.source, FIRST, LAST, as_of=as_of, dry_run=dry_run, on_batch=seen.append
    )
    assert seen == list(result.batches)
    return result


def test_a_range_is_rebuilt_from_raw_exactly_rolled_back_and_refused_when_it_must_be(
    pg: psycopg.Connection, tmp_path: Path
) -> None:
    lake, landing = Lake(str(tmp_path / "lake")), tmp_path / "landing"
    pg.execute(
        "INSERT INTO ops.meters (meter_id, segment, region, timezone) VALUES "
        "('M-LON', 'residential', 'london', 'Europe/London'), "
        "('M-NYC', 'commercial', 'new-york', 'America/New_York')"
    )
    pg.commit()
    b1 = land_and_ingest(pg, lake, landing, B1, SEQ1, B1_NOW)
    after_b1, range_b1 = meter_rows(pg), range_keys(pg)
    now = pd.Timestamp.now(tz="UTC")
    b2 = land_and_ingest(pg, lake, landing, B2, SEQ2, now)
    letters = dead_letters.select(pg, dead_letters.Selection(source=METER_READINGS.source))
    replayed = replay.replay(pg, lake, letters, now)
    assert (replayed.replayed, replayed.accepted) == (3, 1)  # the future reading; not the others
    final, range_final = meter_rows(pg), range_keys(pg)
    assert len(range_final) == 7 and len(final) == 9
    assert final[("M-LON", pd.Timestamp("2026-11-30T00:30:00Z"))][-1] == "voltage_out_of_range"
    quarantine_before = pg.execute("SELECT * FROM ops.quarantine ORDER BY 1, 2").fetchall()
    ledger_before = pg.execute("SELECT * FROM ops.ingest_ledger ORDER BY 1").fetchall()

    # (a) Rows of the range corrupted by hand: the rebuild writes the rows first written, exactly.
    pg.execute("UPDATE ops.meter_readings SET energy_kwh = 99 WHERE reading_start = '2026-11-30T00:00:00Z'")
    pg.execute("DELETE FROM ops.meter_readings WHERE reading_start = '2026-11-30T00:15:00Z'")
    pg.execute("DELETE FROM ops.meter_readings WHERE reading_start = '2026-12-01T20:00:00Z'")
    pg.execute(
        "UPDATE ops.meter_readings SET record_version = 1, energy_kwh = 1.1 "
        "WHERE meter_id = 'M-NYC' AND reading_start = '2026-11-30T12:00:00Z'"
    )
    pg.commit()
    result = rebuild(pg, lake)
    assert meter_rows(pg) == final  # every column, ingested_at included
    assert result.batches == (b1, b2, replayed.batch_id) and result.rolled_back == ()
    assert (result.rows_before, result.rows_deleted, result.rows_after) == (5, 5, 7)
    assert (result.rows_changed, result.rows_corrected) == (3, 1)
    assert result.records_read == 9 + 5 + 3 and result.records_in_range == 5 + 3 + 1
    assert result.rematerialise == (FIRST, LAST) and describe(result)["rows_changed"] == 3
    assert pg.execute("SELECT * FROM ops.quarantine ORDER BY 1, 2").fetchall() == quarantine_before
    assert pg.execute("SELECT * FROM ops.ingest_ledger ORDER BY 1").fetchall() == ledger_before
    logged = pg.execute(
        "SELECT day, rows FROM ops.lifecycle_log WHERE action = 'rollback' ORDER BY day"
    ).fetchall()
    assert logged == [(FIRST, 5), (LAST, 2)]

    # Its days are stamped to rebuild (the next `metrify run` re-materialises what derives from them).
    stamps = "SELECT day FROM ops.retouched_days WHERE batch_id LIKE 'rollback:%%' ORDER BY seq"
    days = [FIRST + timedelta(days=d) for d in range((LAST - FIRST).days + 1)]
    assert [d for (d,) in pg.execute(stamps).fetchall()] == days

    # (c) Again: nothing changes, and nothing is stamped again.
    again = rebuild(pg, lake)
    assert meter_rows(pg) == final
    assert (again.rows_changed, again.rows_corrected, again.rows_after) == (0, 0, 7)
    assert len(pg.execute(stamps).fetchall()) == len(days)

    # (b) As of the first batch: the older versions come back, the later rows of the range go; rows
    # outside the range keep their newest version.
    rolled = rebuild(pg, lake, as_of=processed_at(pg, b1))
    expected = {k: v for k, v in final.items() if k not in range_final}
    expected |= {k: v for k, v in after_b1.items() if k in range_b1}
    assert meter_rows(pg) == expected
    assert rolled.batches == (b1,) and rolled.rolled_back == (b2, replayed.batch_id)
    assert rolled.rows_changed == 5  # 00:15 and M-NYC 12:00 older; 01:00, 20:00 and M-NYC 04:00 gone
    assert rebuild(pg, lake).rows_changed == 5 and meter_rows(pg) == final  # forward again

    # (f) A dry run computes the same report and changes nothing.
    pg.execute("UPDATE ops.meter_readings SET energy_kwh = 42 WHERE reading_start = '2026-11-30T01:00:00Z'")
    pg.commit()
    corrupted, log_rows = meter_rows(pg), pg.execute("SELECT count(*) FROM ops.lifecycle_log").fetchone()
    dry = rebuild(pg, lake, dry_run=True)
    assert dry.dry_run and (dry.rows_changed, dry.rows_corrected, dry.rows_deleted) == (0, 1, 7)
    dry_as_of = rebuild(pg, lake, as_of=processed_at(pg, b1), dry_run=True)
    assert dry_as_of.rows_changed == 5 and dry_as_of.rolled_back == (b2, replayed.batch_id)
    assert meter_rows(pg) == corrupted
    assert pg.execute("SELECT count(*) FROM ops.lifecycle_log").fetchone() == log_rows
    assert rebuild(pg, lake).rows_corrected == 1 and meter_rows(pg) == final

    # (d) A legal hold on the range refuses, as does a day archived out of the hot tier.
    hold = holds.add(pg, "meter_readings", LAST, LAST, "litigation 42", "legal")
    pg.commit()
    with pytest.raises(
        RollbackError, match=f"under a legal hold.*hold {hold.hold_id} on meter_readings 2026-12-01"
    ):
        rebuild(pg, lake)
    holds.release(pg, hold.hold_id, "legal")
    # A meter's hold (on all data) refuses it too: a rebuild deletes that meter's readings.
    meter_hold = holds.add(pg, holds.ALL, FIRST, FIRST, "dispute 43", "legal", meter_id="M-NYC")
    pg.commit()
    with pytest.raises(RollbackError, match=f"hold {meter_hold.hold_id} on all meter M-NYC 2026-11-30"):
        rebuild(pg, lake)
    holds.release(pg, meter_hold.hold_id, "legal")
    pg.execute(
        "INSERT INTO ops.lifecycle_days (dataset, day, tier, storage_class, object_key, manifest_key, "
        "row_count, bytes, checksum, sha256, verified_at, moved_at, hot_deleted_at) VALUES "
        "('meter_readings', %s, 'warm', 'STANDARD', 'k', 'm', 1, 1, 'c', 's', now(), now(), now())",
        (FIRST,),
    )
    pg.commit()
    lake.put("k", b"x")  # the day's copy and manifest are in the lake (a missing copy is rebuilt:
    lake.put("m", b"{}")  # test_restore_missing_copy)
    with pytest.raises(RollbackError, match=r"metrify restore --dataset meter_readings --from 2026-11-30"):
        rebuild(pg, lake)
    pg.execute("UPDATE ops.lifecycle_days SET restored_at = now() + interval '1 second'")
    pg.commit()
    assert rebuild(pg, lake).rows_changed == 0

    # Rows of a batch the ledger does not know could not come back: refused.
    pg.execute(
        "INSERT INTO ops.meter_readings (meter_id, reading_start, interval_minutes, energy_kwh, "
        "record_version, batch_id) VALUES ('M-LON', '2026-11-30T02:00:00Z', 15, 1, 1, 'by-hand')"
    )
    pg.commit()
    with pytest.raises(RollbackError, match="by-hand"):
        rebuild(pg, lake)
    pg.execute("DELETE FROM ops.meter_readings WHERE batch_id = 'by-hand'")
    pg.commit()

    # (e) A raw batch gone from the lake (raw retention): refused, naming the batch and its key.
    found = pg.execute("SELECT raw_key FROM ops.ingest_ledger WHERE batch_id = %s", (b2,)).fetchone()
    assert found is not None
    key_of_b2 = found[0]
    assert lake.exists(key_of_b2)
    lake.delete(key_of_b2)
    with pytest.raises(RollbackError, match=f"{b2} is missing from the lake \\({key_of_b2}"):
        rebuild(pg, lake)
    assert meter_rows(pg) == final
    # ... but a rollback to before that batch does not need it.
    assert rebuild(pg, lake, as_of=processed_at(pg, b1)).rolled_back == (b2, replayed.batch_id)
    assert meter_rows(pg) == expected


TOPIC = "metrify.grid-status.v1"


def sample(node: str, at: str, hz: float) -> bytes:
    record = {"grid_node_id": node, "measured_at": at, "frequency_hz": hz, "voltage_v": 230.0,
              "load_mw": 10.0, "capacity_mw": 20.0}  # fmt: skip
    return json.dumps(record).encode()


def ingest_range(
    conn: psycopg.Connection, lake: Lake, rng: OffsetRange, messages: list[bytes], offsets: list[int]
) -> None:
    """As a Kafka run does: offsets are the record versions."""
    spec = BatchSpec(GRID_STATUS, rng.batch_id, "kafka", rng.batch_id, date(2026, 11, 30))
    process_batch(spec, messages, offsets, lake, conn, pd.Timestamp.now(tz="UTC"))
    conn.commit()


def grid_rows(conn: psycopg.Connection) -> dict[Row, Row]:
    return {row[:2]: row for row in conn.execute("SELECT * FROM ops.grid_status").fetchall()}


def test_kafka_batches_are_rebuilt_with_their_offsets_as_versions_on_utc_days(
    pg: psycopg.Connection, tmp_path: Path
) -> None:
    lake = Lake(str(tmp_path / "lake"))
    k1, k2 = OffsetRange(TOPIC, 0, 0, 4), OffsetRange(TOPIC, 0, 4, 6)
    ingest_range(
        pg, lake, k1,
        [sample("N1", "2026-11-30T10:00:00Z", 50.0), sample("N1", "2026-11-30T10:00:10Z", 49.98),
         sample("N1", "2026-12-01T00:00:00Z", 50.01), sample("N2", "2026-11-30T23:59:50Z", 50.02)],
        [0, 1, 2, 3],
    )  # fmt: skip
    after_k1 = grid_rows(pg)
    ingest_range(
        pg, lake, k2,
        [sample("N1", "2026-11-30T10:00:00Z", 50.05), sample("N1", "2026-11-30T10:00:20Z", 60.0)],
        [4, 5],
    )  # fmt: skip
    final = grid_rows(pg)
    assert final[("N1", pd.Timestamp("2026-11-30T10:00:00Z"))][6] == 4  # the newer offset
    pg.execute("DELETE FROM ops.grid_status WHERE measured_at < '2026-12-01'")
    pg.commit()
    day = date(2026, 11, 30)
    result = rebuild_from_raw(pg, lake, "grid_status", day, day)
    assert grid_rows(pg) == final
    assert (result.rows_changed, result.rows_after, result.records_read) == (3, 3, 6)
    assert rebuild_from_raw(pg, lake, "grid_status", day, day).rows_changed == 0
    # A meter's hold keeps meter readings: grid and weather days are rebuilt under it (it refused them).
    holds.add(pg, holds.ALL, day, day, "dispute 44", "legal", meter_id="M-GRID-HOLD")
    pg.commit()
    assert rebuild_from_raw(pg, lake, "grid_status", day, day).rows_changed == 0
    assert rebuild_from_raw(pg, lake, "weather_observations", day, day).rows_after == 0
    with pytest.raises(RollbackError, match=r"under a legal hold.*meter M-GRID-HOLD"):
        rebuild_from_raw(pg, lake, "meter_readings", day, day)
    as_of = pg.execute(
        "SELECT processed_at FROM ops.ingest_ledger WHERE batch_id = %s", (k1.batch_id,)
    ).fetchone()
    assert as_of is not None
    rolled = rebuild_from_raw(pg, lake, "grid_status", day, day, as_of=as_of[0].astimezone(UTC))
    assert rolled.rows_changed == 1
    assert grid_rows(pg) == after_k1  # the 1 December sample was never touched: the same in both

    # A range with a gap in its offsets (compaction): its versions cannot be reproduced, refused.
    k3 = OffsetRange(TOPIC, 0, 6, 9)
    ingest_range(
        pg,
        lake,
        k3,
        [sample("N2", "2026-11-30T12:00:00Z", 50.0), sample("N2", "2026-11-30T12:00:10Z", 50.0)],
        [6, 8],
    )
    before = grid_rows(pg)
    with pytest.raises(RollbackError, match=f"{k3.batch_id} has 2 messages"):
        rebuild_from_raw(pg, lake, "grid_status", day, day)
    assert grid_rows(pg) == before
