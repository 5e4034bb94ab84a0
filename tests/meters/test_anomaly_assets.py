"""`anomaly_model` and `anomaly_scores` on the real embedded PostgreSQL and a lake directory: both
models trained and stored, a day scored by both, meter-days written; nothing to train on, nothing
written."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import psycopg
import pytest

from metrify_assets.meters.anomaly.assets import anomaly_model, anomaly_scores
from metrify_assets.meters.anomaly.store import CURRENT_KEY
from metrify_assets.resources import LakeResource, PostgresResource
from metrify_assets.resources.lake import Lake

pytestmark = pytest.mark.postgres


def insert_readings(conn: psycopg.Connection, days: int) -> None:
    """Four registered meters and one unregistered, 15-minute readings from 2026-02-02 (UTC)."""
    rng = np.random.default_rng(3)
    starts = pd.date_range("2026-02-02", periods=96 * days, freq="15min", tz="UTC")
    hour = starts.hour.to_numpy()
    with conn.cursor() as cur:
        for i in range(4):
            cur.execute(
                "INSERT INTO ops.meters (meter_id, segment, region, weather_station_id, timezone) "
                "VALUES (%s, 'residential', 'north', 'WX-1', 'UTC')",
                (f"M{i}",),
            )
        cur.execute(
            "INSERT INTO ops.ingest_days (batch_id, source, day, records) VALUES ('B', 'meter_readings', %s, 1)",
            (starts[-1].date(),),
        )
        with cur.copy(
            "COPY ops.meter_readings (meter_id, reading_start, interval_minutes, energy_kwh, record_version, "
            "batch_id) FROM STDIN"
        ) as copy:
            for meter in ["M0", "M1", "M2", "M3", "UNREGISTERED"]:
                energy = (0.2 + 0.2 * np.sin(hour / 24 * 2 * np.pi)) * np.exp(rng.normal(0, 0.1, len(starts)))
                for ts, kwh in zip(starts, energy, strict=True):
                    copy.write_row((meter, ts, 15, float(round(kwh, 4)), 1, "B"))
        with cur.copy("COPY ops.weather_observations (station_id, observed_at, temperature_c, humidity_pct, "
                      "pressure_hpa, wind_speed_ms, precipitation_mm, record_version, batch_id) FROM STDIN") as copy:  # fmt: skip
            for ts in pd.date_range("2026-02-02", periods=24 * days, freq="1h", tz="UTC"):
                copy.write_row(("WX-1", ts, 7.5, 80.0, 1010.0, 3.0, 0.0, 1, "W"))
    conn.commit()


def resources(pg_resource: PostgresResource, lake_dir: Path) -> dict[str, object]:
    return {"postgres": pg_resource, "lake": LakeResource(url=str(lake_dir))}


def test_training_stores_both_models_and_scoring_writes_both_verdicts(
    pg: psycopg.Connection, pg_resource: PostgresResource, tmp_path: Path
) -> None:
    insert_readings(pg, days=15)
    res = resources(pg_resource, tmp_path / "lake")
    trained = dg.materialize([anomaly_model], resources=res)
    assert trained.success
    meta = trained.get_asset_materialization_events()[0].materialization.metadata
    version = meta["model_version"].value
    assert meta["baseline_version"].value.startswith("robust-seasonal-v2@")
    assert "level_kwh" in meta["features"].value and "feature" in meta["feature_importance"].value
    lake = Lake(str(tmp_path / "lake"))
    assert lake.exists(CURRENT_KEY) and lake.exists(f"models/anomaly/{version}/model.joblib")

    scored = dg.materialize([anomaly_scores], resources=res, partition_key="2026-02-16")
    assert scored.success
    meta = scored.get_asset_materialization_events()[0].materialization.metadata
    assert meta["model_version"].value == version
    assert meta["scored"].value == 5 * 96 and meta["meter_days"].value == 5
    rows = pg.execute(
        "SELECT count(*), count(expected_kwh), count(baseline_is_anomaly), min(model_version) "
        "FROM ops.anomaly_scores"
    ).fetchone()
    assert rows == (5 * 96, 5 * 96, 5 * 96, version)
    days = pg.execute("SELECT count(*), sum(intervals) FROM ops.anomaly_meter_days").fetchone()
    assert days == (5, 5 * 96)
    again = dg.materialize([anomaly_scores], resources=res, partition_key="2026-02-16")
    assert again.success  # a re-scored day replaces its rows
    assert pg.execute("SELECT count(*) FROM ops.anomaly_meter_days").fetchone() == (5,)


def test_no_readings_no_model_and_nothing_written(
    pg: psycopg.Connection, pg_resource: PostgresResource, tmp_path: Path
) -> None:
    res = resources(pg_resource, tmp_path / "lake")
    trained = dg.materialize([anomaly_model], resources=res)
    assert trained.success
    assert "note" in trained.get_asset_materialization_events()[0].materialization.metadata
    scored = dg.materialize([anomaly_scores], resources=res, partition_key="2026-02-16")
    assert scored.success
    meta = scored.get_asset_materialization_events()[0].materialization.metadata
    assert meta["scored"].value == 0 and meta["meter_days"].value == 0
    assert pg.execute("SELECT count(*) FROM ops.anomaly_scores").fetchone() == (0,)
    assert not Lake(str(tmp_path / "lake")).exists(CURRENT_KEY)
