"""Quality alerts on a real PostgreSQL and Dagster instance: written by the ingest, failed by the check."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import dagster as dg
import pandas as pd
import psycopg
import pytest

from metrify_assets.alerts.store import list_alerts
from metrify_assets.contracts import WEATHER_OBSERVATIONS
from metrify_assets.definitions import defs as load_defs
from metrify_assets.ingestion.batch import BatchSpec, process_batch
from metrify_assets.ingestion.landing import land_lines
from metrify_assets.orchestration.instance import execute_job
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


def test_a_source_scoring_low_batch_after_batch_is_one_standing_alert(
    pg: psycopg.Connection, tmp_path: Path
) -> None:
    lake = Lake(str(tmp_path / "lake"))
    for name in ("bad-1", "bad-2", "bad-3"):
        spec = BatchSpec(WEATHER_OBSERVATIONS, name, "landing", f"{name}.jsonl", date(2026, 3, 29))
        process_batch(spec, BAD, [1, 1, 1], lake, pg, ARRIVED, received_at=ARRIVED)
        pg.commit()
    assert len(alerts(pg)) == 3  # the per-batch record keeps each batch
    (standing,) = list_alerts(pg, "all")
    assert (standing.kind, standing.subject, standing.occurrences) == ("quality", SOURCE, 3)
    assert standing.details["batch_id"] == "bad-3" and standing.status == "open"

    good = BatchSpec(WEATHER_OBSERVATIONS, "good", "landing", "good.jsonl", date(2026, 3, 29))
    process_batch(good, GOOD, [1, 1, 1], lake, pg, ARRIVED, received_at=ARRIVED)
    pg.commit()
    (resolved,) = list_alerts(pg, "all")
    assert resolved.status == "resolved" and resolved.resolution == "batch good met the quality threshold"


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
