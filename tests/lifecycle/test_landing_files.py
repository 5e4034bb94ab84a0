"""Retention of the landing directory: ingested files past `landing_days` go once their raw batch is in
the lake; a file not ingested yet, one whose raw copy is missing, and a held one stay, with the reason."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from metrify_assets.ingestion.landing import LandedFile, land_lines, list_landed
from metrify_assets.ingestion.provenance import Origin, write_origin
from metrify_assets.lifecycle import holds, retention
from metrify_assets.lifecycle.policy import Policy, RawRetention
from metrify_assets.resources.lake import Lake
from metrify_assets.storage.writes import LedgerEntry, record_batch

pytestmark = pytest.mark.postgres
SOURCE = "weather_observations"
OLD_DAY = date(2026, 3, 1)
TODAY = OLD_DAY + timedelta(days=10)
NOW = datetime(2026, 3, 11, 12, tzinfo=UTC)


def land(folder: Path, station: str, day: date, minute: int = 0) -> LandedFile:
    at = datetime(day.year, day.month, day.day, 10, minute, tzinfo=UTC)
    line = f'{{"station_id": "{station}", "observed_at": "{at:%Y-%m-%dT%H:%M:%SZ}", "temperature_c": 9.5}}'
    return land_lines(folder, SOURCE, [line], seq=int(at.timestamp() * 1_000_000))


def ingested(conn: psycopg.Connection, lake: Lake, landed: LandedFile, raw_copy: bool = True) -> None:
    """The ledger row an ingest run writes, and (unless told not) the raw batch it keeps in the lake."""
    raw_key = f"raw/{SOURCE}/dt={landed.landed_on}/{landed.batch_id}.jsonl.gz"
    if raw_copy:
        lake.put(raw_key, landed.path.read_bytes())
    record_batch(
        conn,
        LedgerEntry(landed.batch_id, SOURCE, "landing", landed.path.name, raw_key, 1, 1, 0, 0, 100.0, None),
    )
    conn.commit()


def test_ingested_files_go_and_the_others_stay_with_the_reason(
    pg: psycopg.Connection, lake: Lake, tmp_path: Path
) -> None:
    landing = tmp_path / "landing"
    done = [land(landing, "W1", OLD_DAY, m) for m in (0, 10)]
    waiting = land(landing, "W2", OLD_DAY)  # never ingested
    no_copy = land(landing, "W3", OLD_DAY - timedelta(days=1))  # its raw batch is not in the lake
    recent = land(landing, "W4", TODAY - timedelta(days=2))  # ingested, but younger than landing_days
    for landed in (done[0], waiting):  # as `metrify ingest` lands them: with the file they came from
        write_origin(landed.path, Origin("exports/w.csv"))
    for landed in done:
        ingested(pg, lake, landed)
    ingested(pg, lake, no_copy, raw_copy=False)
    ingested(pg, lake, recent)
    before = {f.batch_id for f in list_landed(landing, SOURCE)}
    done_bytes = sum(f.path.stat().st_size for f in done)

    plan = retention.apply(pg, lake, Policy(), TODAY, NOW, dry_run=True, landing_dir=landing)
    planned = [o for o in plan.outcomes if o.dataset == "landing"]
    assert [(o.day, o.action, o.rows) for o in planned] == [
        (OLD_DAY - timedelta(days=1), "kept", 1),
        (OLD_DAY, "would expire", 2),
        (OLD_DAY, "kept", 1),
    ]
    assert {f.batch_id for f in list_landed(landing, SOURCE)} == before  # a dry run deletes nothing

    report = retention.apply(pg, lake, Policy(), TODAY, NOW, landing_dir=landing)
    outcomes = {(o.day, o.action): o for o in report.outcomes if o.dataset == "landing"}
    assert outcomes[(OLD_DAY, "expired")].rows == 2
    assert outcomes[(OLD_DAY, "expired")].size == done_bytes
    assert "not ingested yet" in outcomes[(OLD_DAY, "kept")].detail
    assert "is not in the lake" in outcomes[(OLD_DAY - timedelta(days=1), "kept")].detail
    left = {f.batch_id for f in list_landed(landing, SOURCE)}
    assert left == {waiting.batch_id, no_copy.batch_id, recent.batch_id}
    assert not done[0].origin_path.exists() and waiting.origin_path.exists()  # an origin goes with its file
    logged = pg.execute(
        "SELECT action, sum(rows) FROM ops.lifecycle_log WHERE dataset = 'landing' AND NOT dry_run "
        "GROUP BY action ORDER BY action"
    ).fetchall()
    assert logged == [("expired", 2), ("kept", 2)]

    # Files landed are still counted: what was landed = what the directory holds + what expired.
    assert len(before) == len(left) + outcomes[(OLD_DAY, "expired")].rows


def test_a_hold_on_raw_or_on_the_source_keeps_the_files(
    pg: psycopg.Connection, lake: Lake, tmp_path: Path
) -> None:
    landing = tmp_path / "landing"
    first = land(landing, "W1", OLD_DAY)
    second = land(landing, "W1", OLD_DAY + timedelta(days=1))
    for landed in (first, second):
        ingested(pg, lake, landed)
    holds.add(pg, "raw", OLD_DAY, OLD_DAY, "audit 42", "legal")
    # A hold on the source from the second day on: a file holds data of its landing day and earlier.
    holds.add(pg, SOURCE, OLD_DAY + timedelta(days=1), OLD_DAY + timedelta(days=5), "dispute 7", "legal")
    pg.commit()
    report = retention.apply(pg, lake, Policy(), TODAY, NOW, landing_dir=landing)
    assert sorted((o.day, o.action) for o in report.outcomes if o.dataset == "landing") == [
        (OLD_DAY, "held"),
        (OLD_DAY + timedelta(days=1), "held"),
    ]
    assert len(list_landed(landing, SOURCE)) == 2


def test_a_meters_hold_keeps_no_weather_file(pg: psycopg.Connection, lake: Lake, tmp_path: Path) -> None:
    """A trial's hold on one meter (dataset all) kept every later landing file of every source."""
    landing = tmp_path / "landing"
    for landed in (land(landing, "W1", OLD_DAY), land(landing, "W1", OLD_DAY + timedelta(days=1))):
        ingested(pg, lake, landed)
    holds.add(pg, holds.ALL, OLD_DAY, OLD_DAY, "dispute 8", "legal", meter_id="MTR-000001")
    pg.commit()
    report = retention.apply(pg, lake, Policy(), TODAY, NOW, landing_dir=landing)
    assert sorted((o.day, o.action) for o in report.outcomes if o.dataset == "landing") == [
        (OLD_DAY, "expired"),
        (OLD_DAY + timedelta(days=1), "expired"),
    ]
    assert list_landed(landing, SOURCE) == []


def test_landing_files_may_not_outlive_their_raw_copies() -> None:
    with pytest.raises(ValueError, match="landing_days"):
        Policy(raw=RawRetention(ia_days=3, days=5), landing_days=5)
    assert Policy(landing_days=None).landing_days is None
