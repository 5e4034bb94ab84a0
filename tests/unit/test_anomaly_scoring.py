"""The robust seasonal anomaly score."""

from __future__ import annotations

import numpy as np
import pandas as pd

from metrify_assets.anomaly.scoring import MODEL_VERSION, score_readings


def test_a_spike_scores_high_and_normal_readings_do_not() -> None:
    rng = np.random.default_rng(1)
    starts = pd.date_range("2026-03-01", periods=96 * 7, freq="15min", tz="UTC")
    daily = 0.3 + 0.2 * np.sin(2 * np.pi * starts.hour.to_numpy() / 24)
    energy = daily + rng.normal(0, 0.02, len(starts))
    energy[300] = 5.0
    frame = pd.DataFrame({"meter_id": "M1", "reading_start": starts, "energy_kwh": energy})
    scores = score_readings(frame)
    assert scores.loc[300, "is_anomaly"]
    assert scores["score"].iloc[300] > 20
    assert int(scores["is_anomaly"].sum()) == 1
    assert set(scores["model_version"]) == {MODEL_VERSION}


def test_a_flat_meter_does_not_turn_wiggles_into_anomalies() -> None:
    starts = pd.date_range("2026-03-01", periods=96, freq="15min", tz="UTC")
    energy = np.full(len(starts), 0.1)
    energy[::7] += 0.005
    scores = score_readings(pd.DataFrame({"meter_id": "M1", "reading_start": starts, "energy_kwh": energy}))
    assert not scores["is_anomaly"].any()


def test_empty_input() -> None:
    empty = pd.DataFrame(columns=["meter_id", "reading_start", "energy_kwh"])
    assert score_readings(empty).empty
