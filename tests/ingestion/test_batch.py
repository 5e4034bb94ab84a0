"""A batch through every stage on a real PostgreSQL: reconciliation, idempotent replays, versions."""

from __future__ import annotations

import gzip
import hashlib
import json
from datetime import UTC, date
from pathlib import Path

import pandas as pd
import psycopg
import pytest

from metrify_assets.contracts import GRID_STATUS, METER_READINGS, WEATHER_OBSERVATIONS
from metrify_assets.ingestion.batch import BatchSpec, SuiteFailedError, process_batch, raw_body
from metrify_assets.quality import gx
from metrify_assets.resources.lake import Lake

pytestmark = pytest.mark.postgres
NOW = pd.Timestamp("2026-04-01T00:00:00Z")


def reading(meter: str, start: str, kwh: float, **extra: object) -> str:
    return json.dumps(
        {"meter_id": meter, "reading_start": start, "interval_minutes": 15, "energy_kwh": kwh, **extra}
    )


def spec(batch_id: str) -> BatchSpec:
    return BatchSpec(METER_READINGS, batch_id, "landing", f"{batch_id}.jsonl", date(2026, 3, 29))


MESSAGES = [
    reading("M1", "2026-03-29T00:00:00Z", 0.5),
    reading("M1", "2026-03-29T00:15:00Z", 0.6),
    reading("M2", "2026-03-29T00:00:00Z", -0.2),  # negative without export: rejected
    reading("M2", "2026-03-29T00:15:00Z", -0.3, direction="export"),  # export: accepted
    reading("M1", "2026-03-29T00:15:00Z", 0.6),  # exact duplicate: rejected
    reading("M1", "2026-03-29T00:07:00Z", 0.6),  # clock shifted off the grid: rejected
    "{broken",
]


def table_checksum(conn: psycopg.Connection, table: str, cols: str) -> str:
    rows = conn.execute(f"SELECT {cols} FROM {table} ORDER BY 1, 2").fetchall()
    return hashlib.sha256(repr(rows).encode()).hexdigest()


def test_input_equals_accepted_plus_quarantined(pg: psycopg.Connection, tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    result = process_batch(spec("b1"), MESSAGES, [1] * len(MESSAGES), lake, pg, NOW)
    pg.commit()
    ledger = result.ledger
    assert ledger.records_in == 7
    assert ledger.accepted == 3
    assert ledger.quarantined == 4
    assert pg.execute("SELECT count(*) FROM ops.meter_readings").fetchone() == (3,)
    reasons = dict(pg.execute("SELECT record_index, reasons FROM ops.quarantine").fetchall())
    assert reasons[2] == "negative_energy"
    assert reasons[4] == "duplicate_exact"
    assert "timestamp_misaligned" in reasons[5]
    assert reasons[6].startswith("malformed:invalid_json")
    stored = pg.execute(
        "SELECT records_in, accepted, quarantined FROM ops.ingest_ledger WHERE batch_id = 'b1'"
    ).fetchone()
    assert stored == (7, 3, 4)
    assert lake.exists(spec("b1").raw_key)


def test_replays_in_any_order_leave_the_same_state(pg: psycopg.Connection, tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    first = [reading("M1", "2026-03-29T00:00:00Z", 0.5), reading("M1", "2026-03-29T00:15:00Z", 0.6)]
    newer = [reading("M1", "2026-03-29T00:15:00Z", 0.9)]  # a re-sent reading with a newer version
    process_batch(spec("old"), first, [10, 10], lake, pg, NOW)
    process_batch(spec("new"), newer, [20], lake, pg, NOW)
    pg.commit()
    cols = "meter_id, reading_start, energy_kwh, record_version"
    state = table_checksum(pg, "ops.meter_readings", cols)
    quarantine = table_checksum(pg, "ops.quarantine", "batch_id, record_index, reasons")
    # Replay the old batch after the new one, and both again: nothing changes.
    for batch_id, msgs, version in [("old", first, 10), ("new", newer, 20), ("old", first, 10)]:
        process_batch(spec(batch_id), msgs, [version] * len(msgs), lake, pg, NOW)
    pg.commit()
    assert table_checksum(pg, "ops.meter_readings", cols) == state
    assert table_checksum(pg, "ops.quarantine", "batch_id, record_index, reasons") == quarantine
    assert pg.execute(
        "SELECT energy_kwh FROM ops.meter_readings WHERE reading_start = '2026-03-29T00:15:00Z'"
    ).fetchone() == (0.9,)
    assert pg.execute("SELECT count(*) FROM ops.ingest_ledger").fetchone() == (2,)


def test_a_failing_blocking_suite_writes_nothing(
    pg: psycopg.Connection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = Lake(str(tmp_path / "lake"))
    real_validate = gx.validate

    def strict(name: str, frame: pd.DataFrame) -> gx.SuiteResult:
        # Drop a required column so the real validated suite fails, as a schema break upstream would.
        return real_validate(
            name, frame.drop(columns=["energy_kwh"]) if name.startswith("validated") else frame
        )

    monkeypatch.setattr(gx, "validate", strict)
    with pytest.raises(SuiteFailedError):
        process_batch(spec("b2"), MESSAGES[:2], [1, 1], lake, pg, NOW)
    pg.rollback()
    assert pg.execute("SELECT count(*) FROM ops.meter_readings").fetchone() == (0,)
    assert pg.execute("SELECT count(*) FROM ops.ingest_ledger").fetchone() == (0,)


def test_a_frequency_only_grid_feed_lands_without_invented_values(
    pg: psycopg.Connection, tmp_path: Path
) -> None:
    """A 10-second frequency series (as RTE and many operators publish it): no voltage, no load."""
    start = pd.Timestamp("2014-01-10T00:00:00+01:00")
    deviations_mhz = [
        25.6,
        22.3,
        22.0,
        15.2,
        9.1,
        -610.0,
    ]  # the last one beyond the +/-500 mHz statutory band
    messages = [
        json.dumps(
            {
                "grid_node_id": "FR-PARIS",
                "measured_at": (start + pd.Timedelta(seconds=10 * i)).isoformat(),
                "frequency_hz": 50 + mhz / 1000,
            }
        )
        for i, mhz in enumerate(deviations_mhz)
    ]
    grid_spec = BatchSpec(GRID_STATUS, "g1", "landing", "g1.jsonl", date(2014, 1, 10))
    result = process_batch(grid_spec, messages, [1] * len(messages), Lake(str(tmp_path / "lake")), pg, NOW)
    pg.commit()
    assert (result.ledger.records_in, result.ledger.accepted, result.ledger.quarantined) == (6, 6, 0)
    assert result.ledger.flagged == 1  # frequency_out_of_range, judged on frequency alone
    rows = pg.execute(
        "SELECT count(*), count(voltage_v), count(load_mw), round(min(frequency_hz)::numeric, 3)::float8 "
        "FROM ops.grid_status"
    ).fetchone()
    assert rows == (6, 0, 0, 49.39)


def test_a_weather_observation_missing_a_measure_is_stored_with_it_null(
    pg: psycopg.Connection, tmp_path: Path
) -> None:
    """A user's trial sent `"humidity_pct": null` and the whole observation, its good temperature with
    it, went to quarantine as `malformed:missing_field:humidity_pct`. Stations miss a measure (a broken
    hygrometer, no rain gauge): it is stored NULL. A missing temperature is still quarantined, and a
    measure present but implausible still rejected: in = accepted + quarantined."""
    full = {
        "station_id": "WX-1",
        "temperature_c": 9.5,
        "humidity_pct": 80.0,
        "pressure_hpa": 1012.0,
        "wind_speed_ms": 3.2,
        "precipitation_mm": 0.0,
    }

    def observation(minute: int, **changes: object) -> str:
        record = {**full, "observed_at": f"2026-03-29T10:{minute:02d}:00+01:00", **changes}
        return json.dumps({k: v for k, v in record.items() if v is not ...})

    messages = [
        observation(0, humidity_pct=None),
        observation(10, humidity_pct=...),  # left out
        observation(20, humidity_pct=..., pressure_hpa=None, wind_speed_ms=..., precipitation_mm=None),
        observation(30, temperature_c=None),
        observation(40, humidity_pct=101.0, precipitation_mm=None),
        observation(50),
    ]
    weather = BatchSpec(WEATHER_OBSERVATIONS, "w1", "landing", "w1.jsonl", date(2026, 3, 29))
    result = process_batch(weather, messages, [1] * len(messages), Lake(str(tmp_path / "lake")), pg, NOW)
    pg.commit()
    ledger = result.ledger
    assert (ledger.records_in, ledger.accepted, ledger.quarantined) == (6, 4, 2)
    assert ledger.records_in == ledger.accepted + ledger.quarantined
    reasons = dict(pg.execute("SELECT record_index, reasons FROM ops.quarantine").fetchall())
    assert reasons == {3: "malformed:missing_field:temperature_c", 4: "humidity_implausible"}
    rows = pg.execute(
        "SELECT extract(minute FROM observed_at)::int, temperature_c, humidity_pct, pressure_hpa, "
        "wind_speed_ms, precipitation_mm FROM ops.weather_observations ORDER BY observed_at"
    ).fetchall()
    assert rows == [
        (0, 9.5, None, 1012.0, 3.2, 0.0),
        (10, 9.5, None, 1012.0, 3.2, 0.0),
        (20, 9.5, None, None, None, None),
        (50, 9.5, 80.0, 1012.0, 3.2, 0.0),
    ]


def test_a_sample_stamped_with_an_offset_no_place_has_is_quarantined_with_the_reason(
    pg: psycopg.Connection, tmp_path: Path
) -> None:
    """The drain's and the landing's path: +14:30 was stored as 09:30 UTC of the day before."""
    messages = [
        json.dumps(
            {"grid_node_id": "N1", "measured_at": f"2026-03-29T10:00:00{offset}", "frequency_hz": 50.0}
        )
        for offset in ("+14:00", "+14:30", "-12:00", "+99:59")
    ]
    grid_spec = BatchSpec(GRID_STATUS, "g2", "kafka", "metrify.grid-status.v1-0-0-4", date(2026, 3, 29))
    result = process_batch(grid_spec, messages, [1, 2, 3, 4], Lake(str(tmp_path / "lake")), pg, NOW)
    pg.commit()
    ledger = result.ledger
    assert (ledger.records_in, ledger.accepted, ledger.quarantined) == (4, 2, 2)
    reasons = dict(pg.execute("SELECT record_index, reasons FROM ops.quarantine").fetchall())
    assert reasons == {1: "malformed:bad_offset:measured_at", 3: "malformed:bad_offset:measured_at"}
    stored = pg.execute("SELECT measured_at FROM ops.grid_status ORDER BY 1").fetchall()
    assert [str(t.astimezone(UTC)) for (t,) in stored] == [
        "2026-03-28 20:00:00+00:00",
        "2026-03-29 22:00:00+00:00",
    ]


def test_a_raw_batch_is_standard_gzip_of_its_messages_verbatim() -> None:
    messages = ['{"meter_id": "m1"}\n', b'{"meter_id": "m2", "extra": [1]}', None, "", b"\xff not utf-8"]
    body = raw_body(messages)
    assert body[:2] == b"\x1f\x8b", "gzip's magic"
    lines = gzip.decompress(body).split(b"\n")  # the standard library reads what ISA-L wrote
    assert lines == [
        b'{"meter_id": "m1"}',
        b'{"meter_id": "m2", "extra": [1]}',
        b"",
        b"",
        b"\xff not utf-8",
        b"",
    ]
    assert raw_body(messages) == body, "no timestamp in the header: the same batch, the same bytes"
