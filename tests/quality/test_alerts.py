"""Quality alerts on a real PostgreSQL and Dagster instance: written by the ingest, failed by the check."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import pandas as pd
import psycopg
import pytest

from metrify_assets.alerts.store import list_alerts
from metrify_assets.contracts import WEATHER_OBSERVATIONS
from metrify_assets.definitions import defs as load_defs
from metrify_assets.ingestion import dead_letters, replay
from metrify_assets.ingestion.batch import BatchResult, BatchSpec, process_batch
from metrify_assets.ingestion.landing import land_lines
from metrify_assets.orchestration.instance import execute_job
from metrify_assets.quality.alerts import RESOLVE_QUIET
from metrify_assets.resources import PostgresResource
from metrify_assets.resources.lake import Lake

pytestmark = pytest.mark.postgres
SOURCE = "weather_observations"
ARRIVED = pd.Timestamp("2026-03-29T10:30:00Z")


def observation(station: str, minute: int, humidity: float = 80) -> str:
    return json.dumps(
        {"station_id": station, "observed_at": f"2026-03-29T10:{minute:02d}:00Z", "temperature_c": 9.5,
         "humidity_pct": humidity, "pressure_hpa": 1012, "wind_speed_ms": 3.2, "precipitation_mm": 0}
    )  # fmt: skip


GOOD = [observation("W1", 0), observation("W1", 10), observation("W1", 20)]
BAD = [observation("W2", 0), observation("W2", 10, humidity=150), observation("W2", 20)]  # 1 rejected


def alerts(conn: psycopg.Connection) -> dict[str, tuple[float, float]]:
    rows = conn.execute("SELECT batch_id, quality_score, threshold FROM ops.quality_alerts").fetchall()
    return {b: (s, t) for b, s, t in rows}


def test_a_batch_below_the_threshold_raises_an_alert_and_a_replay_reflects_the_threshold(
    pg: psycopg.Connection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = Lake(str(tmp_path / "lake"))
    spec = BatchSpec(WEATHER_OBSERVATIONS, "bad", "landing", "bad.jsonl", date(2026, 3, 29))
    result = process_batch(spec, BAD, [1, 1, 1], lake, pg, ARRIVED, received_at=ARRIVED)
    pg.commit()
    assert result.alert is not None
    assert result.ledger.quality_score is not None and result.ledger.quality_score < 95
    assert alerts(pg) == {"bad": (result.ledger.quality_score, 95.0)}
    assert result.alert.dimensions["accuracy"] == pytest.approx(2 / 3, abs=1e-3)
    assert "weakest: accuracy" in result.alert.message
    # The same batch under a lower threshold: cleared.
    again = process_batch(spec, BAD, [1, 1, 1], lake, pg, ARRIVED, received_at=ARRIVED, alert_threshold=50)
    pg.commit()
    assert again.alert is None
    assert alerts(pg) == {}


def test_the_ingest_job_fails_the_non_blocking_score_check(
    tmp_path: Path, pg_resource: PostgresResource, pg: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("METRIFY_HOME", str(tmp_path))
    monkeypatch.setenv("METRIFY_POSTGRES_URL", pg_resource.get_url())
    defs = load_defs()
    instance = dg.DagsterInstance.ephemeral()
    seq = int(ARRIVED.value // 1000)
    outcomes = {}
    for name, lines in (("good", GOOD), ("bad", BAD)):
        landed = land_lines(tmp_path / "landing", SOURCE, lines, seq=seq)
        config = {"ops": {f"ingest_{SOURCE}": {"config": {"landing_file": str(landed.path)}}}}
        result = execute_job(defs, f"ingest_{SOURCE}_job", instance, run_config=config)  # the run succeeds
        (evaluation,) = [
            e for e in result.get_asset_check_evaluations() if e.check_name == f"quality_score_{SOURCE}"
        ]
        outcomes[name] = (evaluation, landed.batch_id)
        (validated,) = [
            e.materialization.metadata
            for e in result.get_asset_materialization_events()
            if e.materialization.asset_key == dg.AssetKey(f"validated_{SOURCE}")
        ]
        floats = {k: v.value for k, v in validated.items() if isinstance(v, dg.FloatMetadataValue)}
        # 1 of the bad batch's 3 records is rejected: unrounded, the UI showed accuracy 0.6666666666666667
        # and score 89.99999999999999
        assert {"quality_score", "quality_completeness", "quality_accuracy"} <= set(floats), floats
        assert all(v == float(f"{v:.4g}") for v in floats.values()), floats
    good, good_batch = outcomes["good"]
    bad, bad_batch = outcomes["bad"]
    assert good.passed and good.metadata["alerts"].value == 0
    assert good.metadata["batch_id"].value == good_batch
    assert not bad.passed
    assert bad.severity == dg.AssetCheckSeverity.WARN
    assert bad.metadata["batch_id"].value == bad_batch
    score = bad.metadata["quality_score"].value
    assert isinstance(score, float) and score < 95
    assert bad.metadata["threshold"].value == 95.0
    assert set(alerts(pg)) == {bad_batch}


def ingest_at(
    pg: psycopg.Connection,
    lake: Lake,
    name: str,
    messages: list[str],
    minutes: int = 0,
    backfill: bool | list[bool] = False,
) -> BatchResult:
    """Ingest a landing batch that arrived at ARRIVED, processed `minutes` later."""
    spec = BatchSpec(WEATHER_OBSERVATIONS, name, "landing", f"{name}.jsonl", date(2026, 3, 29))
    now = ARRIVED + pd.Timedelta(minutes=minutes)
    result = process_batch(
        spec, messages, [1] * len(messages), lake, pg, now, received_at=ARRIVED, backfill=backfill
    )
    pg.commit()
    return result


def test_a_source_scoring_low_batch_after_batch_is_one_standing_alert(
    pg: psycopg.Connection, tmp_path: Path
) -> None:
    lake = Lake(str(tmp_path / "lake"))
    for name in ("bad-1", "bad-2", "bad-3"):
        ingest_at(pg, lake, name, BAD)
    assert len(alerts(pg)) == 3  # the per-batch record keeps each batch
    (standing,) = list_alerts(pg, "all")
    assert (standing.kind, standing.subject, standing.occurrences) == ("quality", SOURCE, 3)
    assert standing.details["batch_id"] == "bad-3" and standing.status == "open"

    ingest_at(pg, lake, "good", GOOD, minutes=int(RESOLVE_QUIET.total_seconds() // 60))
    (resolved,) = list_alerts(pg, "all")
    assert resolved.status == "resolved" and resolved.resolution == "batch good met the quality threshold"


def test_a_feed_hovering_at_the_threshold_stays_one_alert_until_it_is_good_for_the_quiet_period(
    pg: psycopg.Connection, tmp_path: Path
) -> None:
    """Bad, good, bad, good batches: one alert (one notification), not one per swing."""
    lake = Lake(str(tmp_path / "lake"))
    assert timedelta(minutes=30) == RESOLVE_QUIET
    ingest_at(pg, lake, "bad-1", BAD, minutes=0)
    ingest_at(pg, lake, "good-1", GOOD, minutes=10)  # too soon: the condition stands
    ingest_at(pg, lake, "bad-2", BAD, minutes=20)  # the same alert, refreshed
    ingest_at(pg, lake, "good-2", GOOD, minutes=45)  # 25 min after the last low batch
    (standing,) = list_alerts(pg, "all")
    assert (standing.status, standing.occurrences, standing.details["batch_id"]) == ("open", 2, "bad-2")
    assert set(alerts(pg)) == {"bad-1", "bad-2"}  # the per-batch record follows each batch at once

    ingest_at(pg, lake, "good-3", GOOD, minutes=50)  # 30 min without a low batch
    (resolved,) = list_alerts(pg, "all")
    assert resolved.status == "resolved" and resolved.resolution == "batch good-3 met the quality threshold"
    assert resolved.resolved_at == ARRIVED + pd.Timedelta(minutes=50)  # when the batch was processed


def test_last_years_file_declared_a_backfill_raises_no_alert(pg: psycopg.Connection, tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    a_year_on = ARRIVED + pd.Timedelta(days=365)
    spec = BatchSpec(WEATHER_OBSERVATIONS, "old", "landing", "old.jsonl", date(2027, 3, 29))
    as_live = process_batch(spec, GOOD, [1, 1, 1], lake, pg, a_year_on, received_at=a_year_on)
    pg.commit()
    assert as_live.quality.timeliness == 0.0 and as_live.alert is not None  # a year late, as a live feed
    declared = process_batch(spec, GOOD, [1, 1, 1], lake, pg, a_year_on, received_at=a_year_on, backfill=True)
    pg.commit()
    assert declared.alert is None and declared.quality.score == pytest.approx(100.0)
    assert alerts(pg) == {}
    # The live-feed condition raised by the first pass stands: only a live batch (or a person) clears it.
    assert [a.dedup_key for a in list_alerts(pg, "open")] == [f"quality:{SOURCE}"]
    row = pg.execute(
        "SELECT backfill_records, timeliness, quality_score FROM ops.ingest_ledger WHERE batch_id = 'old'"
    ).fetchone()
    assert row == (3, None, 100.0)


def test_a_declared_backfill_with_nothing_decodable_is_still_a_backfill(
    pg: psycopg.Connection, tmp_path: Path
) -> None:
    """Every message malformed: no record to carry the declaration, yet the batch was declared history."""
    lake = Lake(str(tmp_path / "lake"))
    landing = ingest_at(pg, lake, "old-file", ["{broken", "not json"], backfill=True)  # a `.backfill` file
    kafka = ingest_at(pg, lake, "old-range", ["{broken", "[]"], backfill=[True, True])  # per message
    for result in (landing, kafka):
        assert result.alert is not None and result.quality.timeliness is None
        assert result.ledger.timeliness is None
    # The import's condition, not the live feed's.
    assert [(a.dedup_key, a.subject, a.occurrences) for a in list_alerts(pg, "open")] == [
        (f"quality:{SOURCE}:backfill", f"{SOURCE} (backfill)", 2)
    ]
    # A batch only partly declared is live: its live messages could be late.
    mixed = ingest_at(pg, lake, "mixed", ["{broken", "not json"], backfill=[True, False])
    assert mixed.quality.timeliness == 0.0
    assert {a.dedup_key for a in list_alerts(pg, "open")} == {
        f"quality:{SOURCE}:backfill",
        f"quality:{SOURCE}",
    }


def test_a_dead_letter_replay_is_a_condition_of_its_own(pg: psycopg.Connection, tmp_path: Path) -> None:
    """A good replay of a few fixed records does not clear the import's (or the feed's) alert."""
    lake = Lake(str(tmp_path / "lake"))
    now = pd.Timestamp("2026-04-01T00:00:00Z")
    # An import declared history, processed on a host whose clock ran an hour slow: its two newest
    # observations look like the future and are dead-lettered, so the batch scores low.
    times = ["2026-03-31T23:40:00Z", "2026-03-31T23:50:00Z", "2026-04-01T00:30:00Z", "2026-04-01T00:40:00Z"]
    messages = [json.dumps({**json.loads(observation("W5", 0)), "observed_at": t}) for t in times]
    spec = BatchSpec(WEATHER_OBSERVATIONS, "import", "landing", "import.jsonl.backfill", date(2026, 3, 31))
    imported = process_batch(spec, messages, [1] * 4, lake, pg, now, backfill=True)
    pg.commit()
    assert imported.alert is not None and len(imported.quarantined) == 2
    backfill_key = f"quality:{SOURCE}:backfill"
    assert [a.dedup_key for a in list_alerts(pg, "open")] == [backfill_key]

    letters = dead_letters.select(pg, dead_letters.Selection(source=SOURCE))
    # Replayed too soon (the clock still slow): still rejected, a low replay.
    replay.replay(pg, lake, letters, now + pd.Timedelta(minutes=5))
    replay_key = f"quality:{SOURCE}:replay"
    assert {a.dedup_key: a.subject for a in list_alerts(pg, "open")} == {
        backfill_key: f"{SOURCE} (backfill)",
        replay_key: f"{SOURCE} (replay)",
    }
    # After the fix, the replay takes both in and scores 100: it clears the replay's condition only.
    fixed = replay.replay(pg, lake, letters, now + pd.Timedelta(hours=1))
    assert fixed.accepted == 2
    assert [a.dedup_key for a in list_alerts(pg, "open")] == [backfill_key]
    (cleared,) = [a for a in list_alerts(pg, "all") if a.dedup_key == replay_key]
    assert cleared.status == "resolved"
