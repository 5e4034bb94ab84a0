"""Dead-letter replay on a real PostgreSQL: after a fix, quarantined records come back through the
ingest path; their quarantine rows are resolved, never duplicated, and replaying again changes nothing."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pandas as pd
import psycopg
import pytest
from typer.testing import CliRunner

from metrify_assets.cli.main import app
from metrify_assets.contracts import WEATHER_OBSERVATIONS
from metrify_assets.ingestion import dead_letters, replay
from metrify_assets.ingestion.batch import BatchSpec, process_batch
from metrify_assets.quality.quarantine import QuarantineRow, quarantine
from metrify_assets.resources import PostgresResource
from metrify_assets.resources.lake import Lake
from metrify_assets.storage.audit import Caller

pytestmark = pytest.mark.postgres
NOW = pd.Timestamp("2026-04-01T00:00:00Z")


def observation(at: str, temperature: float = 9.5, station: str = "W1") -> str:
    return json.dumps(
        {"station_id": station, "observed_at": at, "temperature_c": temperature,
         "humidity_pct": 80, "pressure_hpa": 1012, "wind_speed_ms": 3.2, "precipitation_mm": 0}
    )  # fmt: skip


# The ingest host's clock ran an hour slow: the station's latest readings looked like the future.
# Once the clock is fixed (LATER), they are plausible and a replay takes them in.
LATER = NOW + pd.Timedelta(hours=1)
AHEAD = ["2026-04-01T00:30:00Z", "2026-04-01T00:40:00Z"]
MESSAGES = [
    observation("2026-03-31T23:50:00Z"),
    observation(AHEAD[0], 10.0),
    observation(AHEAD[1], 11.0),
    observation(AHEAD[1], 11.0),
    "{broken",
]


def ingest(
    conn: psycopg.Connection,
    lake: Lake,
    batch_id: str,
    messages: list[str],
    version: int,
    now: pd.Timestamp = NOW,
) -> None:
    spec = BatchSpec(WEATHER_OBSERVATIONS, batch_id, "landing", batch_id, date(2026, 3, 29))
    process_batch(spec, messages, [version] * len(messages), lake, conn, now)
    conn.commit()


def rows(conn: psycopg.Connection) -> list[tuple[object, ...]]:
    return conn.execute(
        "SELECT station_id, observed_at, temperature_c, record_version FROM ops.weather_observations ORDER BY 2"
    ).fetchall()


def quarantine_rows(conn: psycopg.Connection) -> list[tuple[object, ...]]:
    return conn.execute(
        "SELECT batch_id, record_index, reasons, resolved_by IS NOT NULL, replays FROM ops.quarantine ORDER BY 1, 2"
    ).fetchall()


def test_a_replay_after_the_fix_resolves_what_it_accepts_and_adds_no_quarantine_row(
    pg: psycopg.Connection, tmp_path: Path
) -> None:
    lake = Lake(str(tmp_path / "lake"))
    ingest(pg, lake, "b1", MESSAGES, version=5)
    assert [r[2] for r in quarantine_rows(pg)] == [
        "timestamp_in_future",
        "timestamp_in_future",
        "timestamp_in_future,duplicate_exact",
        quarantine_rows(pg)[3][2],
    ]
    letters = dead_letters.select(pg, dead_letters.Selection())
    assert [d.replayable for d in letters] == [True, True, False, True]  # the duplicate stays out
    assert [d.record_version for d in letters] == [5, 5, 5, 5]

    replayable = [d for d in letters if d.replayable]
    first = replay.replay(pg, lake, replayable, LATER)
    assert (first.replayed, first.accepted, first.still_quarantined) == (3, 2, 1)
    assert [r[2] for r in rows(pg)] == [9.5, 10.0, 11.0]
    assert [r[3] for r in rows(pg)] == [5, 5, 5]  # the original version, not a new one
    after = quarantine_rows(pg)
    assert len(after) == 4  # resolved in place, nothing added
    assert [(r[1], r[3], r[4]) for r in after] == [(1, True, 1), (2, True, 1), (3, False, 0), (4, False, 1)]
    ledger = pg.execute(
        "SELECT origin, records_in, accepted, quarantined FROM ops.ingest_ledger WHERE batch_id = %s",
        (first.batch_id,),
    ).fetchone()
    assert ledger == ("replay", 3, 2, 1)
    days = pg.execute("SELECT day FROM ops.ingest_days WHERE batch_id = %s", (first.batch_id,)).fetchall()
    assert days == [(date(2026, 4, 1),)]  # the replayed day is dirty for the downstream runs

    before = (rows(pg), quarantine_rows(pg))
    still = [d for d in dead_letters.select(pg, dead_letters.Selection()) if d.replayable]
    assert [(d.record_index, d.reasons.split(" ")[0]) for d in still] == [(4, "malformed:invalid_json")]
    again = replay.replay(pg, lake, still, LATER)
    assert again.accepted == 0
    assert rows(pg) == before[0]
    assert len(quarantine_rows(pg)) == 4


def test_a_replayed_record_never_overwrites_a_newer_reading(pg: psycopg.Connection, tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    pg.execute(
        "INSERT INTO ops.quarantine (batch_id, record_index, source, payload, reasons, record_version) "
        "VALUES ('old', 0, 'weather_observations', %s, 'timestamp_in_future', 3)",
        (observation(AHEAD[0], 10.0),),
    )
    ingest(pg, lake, "newer", [observation(AHEAD[0], 12.0)], version=9, now=LATER)  # re-sent, corrected
    result = replay.replay(pg, lake, dead_letters.select(pg, dead_letters.Selection()), LATER)
    assert result.accepted == 1
    assert [(r[2], r[3]) for r in rows(pg)] == [(12.0, 9)]


def test_metrify_dlq_list_show_and_replay(
    pg: psycopg.Connection, pg_resource: PostgresResource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("METRIFY_HOME", str(tmp_path))
    monkeypatch.setenv("METRIFY_POSTGRES_URL", pg_resource.get_url())
    ingest(pg, Lake(str(tmp_path / "lake")), "b1", MESSAGES, version=5)
    runner = CliRunner()

    listed = runner.invoke(app, ["dlq", "list", "--source", "weather_observations"], catch_exceptions=False)
    assert listed.exit_code == 0, listed.output
    assert "timestamp_in_future" in listed.output and "(not replayable)" in listed.output
    shown = runner.invoke(app, ["dlq", "show", "b1", "1"], catch_exceptions=False)
    assert json.loads(shown.stdout)["payload"]["temperature_c"] == 10.0
    missing = runner.invoke(app, ["dlq", "show", "b1", "99"])
    assert missing.exit_code == 1 and "no dead letter" in missing.output
    as_json = runner.invoke(app, ["dlq", "list", "--json"], catch_exceptions=False)
    listing = json.loads(as_json.stdout)
    assert sum(r["records"] for r in listing["by_reason"]) >= len(listing["records"]) == 4
    assert {r["replayable"] for r in listing["records"]} == {True, False}
    assert listing["totals"] == {"records": 4, "replayable": 3}  # the 3 `metrify status` counts
    dry = runner.invoke(app, ["dlq", "replay", "--dry-run"], catch_exceptions=False)
    assert "3 dead letters to replay (1 not replayable" in dry.output
    assert "would replay: 3 shown" in dry.output and dry.output.count("b1") == 3  # listed, not replayed
    assert pg.execute("SELECT count(*) FROM ops.quarantine WHERE resolved_at IS NOT NULL").fetchone() == (0,)

    replayed = runner.invoke(  # now is the real clock: long past AHEAD
        app, ["dlq", "replay", "--reason", "timestamp_in_future", "--no-materialise"], catch_exceptions=False
    )
    assert replayed.exit_code == 0, replayed.output
    pg.commit()
    assert pg.execute("SELECT count(*) FROM ops.quarantine WHERE resolved_at IS NOT NULL").fetchone() == (2,)
    assert "1 days touched" in replayed.output


def test_dead_letters_count_by_the_codes_the_marts_count(pg: psycopg.Connection) -> None:
    """A reviewer's note was cut at its first space (one reason per note's first word)."""
    quarantine(
        pg,
        "meter_readings",
        "b1",
        [
            QuarantineRow(0, "{", "malformed:invalid_json (unexpected end of data at char 1)"),
            QuarantineRow(1, "[", "malformed:invalid_json (unexpected character at char 0)"),
            QuarantineRow(2, "{}", "review_rejected:CT ratio wrong; see ticket 12"),
            QuarantineRow(3, "{}", "review_rejected:spike,negative_energy"),
        ],
    )
    assert dead_letters.reason_counts(pg, dead_letters.Selection()) == [
        ("meter_readings", "malformed:invalid_json", 2),
        ("meter_readings", "review_rejected", 2),
        ("meter_readings", "negative_energy", 1),
    ]


class FailingCaller(Caller):
    """A caller whose audit entry cannot be written (the connection dropped, say)."""

    def record(self, *args: object, **kwargs: object) -> int:
        raise psycopg.OperationalError("connection lost while writing the audit entry")


def test_a_replay_and_its_audit_entry_commit_together(pg: psycopg.Connection, tmp_path: Path) -> None:
    """Every letter still rejected (the batch's transaction block would commit on its own on an idle
    connection): when the audit entry fails, nothing of the replay is left behind."""
    lake = Lake(str(tmp_path / "lake"))
    ingest(pg, lake, "b1", MESSAGES, version=5)
    broken = [
        d for d in dead_letters.select(pg, dead_letters.Selection()) if d.reasons.startswith("malformed")
    ]
    assert len(broken) == 1
    before = (quarantine_rows(pg), pg.execute("SELECT count(*) FROM ops.ingest_ledger").fetchone())
    pg.commit()  # idle, as between two chunks of `metrify dlq replay`
    with pytest.raises(psycopg.OperationalError):
        replay.replay(pg, lake, broken, LATER, caller=FailingCaller("ops", "cli"))
    pg.rollback()
    assert (quarantine_rows(pg), pg.execute("SELECT count(*) FROM ops.ingest_ledger").fetchone()) == before


def touched(conn: psycopg.Connection) -> list[tuple[object, ...]]:
    """What `metrify run` and `late_days_sensor` read as days to rebuild."""
    return conn.execute("SELECT seq, batch_id, source, day FROM ops.touched_days ORDER BY seq").fetchall()


def test_a_replay_that_accepts_nothing_touches_no_day(pg: psycopg.Connection, tmp_path: Path) -> None:
    """Still-malformed dead letters replayed: nothing new is stored, so no day is stamped for the
    downstream runs (the trial's replay stamped its own processing day with 0 records, and the next
    `metrify run` built that day, which had no readings). The ledger row and the quarantine rows
    still account for every record replayed."""
    lake = Lake(str(tmp_path / "lake"))
    ingest(pg, lake, "b1", MESSAGES, version=5)
    broken = [
        d for d in dead_letters.select(pg, dead_letters.Selection()) if d.reasons.startswith("malformed")
    ]
    before = (
        touched(pg),
        pg.execute("SELECT batch_id, day, records FROM ops.ingest_days ORDER BY 1, 2").fetchall(),
    )

    result = replay.replay(pg, lake, broken, LATER + pd.Timedelta(days=30))
    assert (result.replayed, result.accepted, result.still_quarantined) == (1, 0, 1)
    after = (
        touched(pg),
        pg.execute("SELECT batch_id, day, records FROM ops.ingest_days ORDER BY 1, 2").fetchall(),
    )
    assert after == before
    ledger = pg.execute(
        "SELECT origin, records_in, accepted, quarantined FROM ops.ingest_ledger WHERE batch_id = %s",
        (result.batch_id,),
    ).fetchone()
    assert ledger == ("replay", 1, 0, 1)  # in = accepted + quarantined, for the replay's row too
    last = quarantine_rows(pg)[-1]
    assert (last[0], last[1], last[3], last[4]) == ("b1", 4, False, 1)  # its row, replayed once, kept
