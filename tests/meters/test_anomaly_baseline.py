"""The baseline, a robust seasonal anomaly model: fitted on a window, scoring other readings with a version."""

from __future__ import annotations

import numpy as np
import pandas as pd

from metrify_assets.meters.anomaly.baseline import (
    BASELINE_KIND,
    baseline_version,
    fit_baseline,
    score_baseline,
)


def week(meter: str = "M1", seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    starts = pd.date_range("2026-03-01", periods=96 * 7, freq="15min", tz="UTC")
    daily = 0.3 + 0.2 * np.sin(2 * np.pi * starts.hour.to_numpy() / 24)
    return pd.DataFrame(
        {"meter_id": meter, "reading_start": starts, "energy_kwh": daily + rng.normal(0, 0.02, len(starts))}
    )


def test_a_spike_on_a_new_day_scores_high_and_normal_readings_do_not() -> None:
    model = fit_baseline(week())
    day = week(seed=2).iloc[:96].copy()
    day["reading_start"] += pd.Timedelta(days=7)
    day.loc[40, "energy_kwh"] = 5.0
    scores, unscored = score_baseline(day, model, "v-test")
    assert unscored == 0
    assert scores.loc[40, "is_anomaly"]
    assert scores["score"].iloc[40] > 20
    assert int(scores["is_anomaly"].sum()) == 1
    assert set(scores["model_version"]) == {"v-test"}


def test_the_model_is_one_row_per_meter_and_hour() -> None:
    model = fit_baseline(pd.concat([week("M1"), week("M2", seed=3)]))
    assert len(model) == 2 * 24
    assert (model["samples"] == 7 * 4).all()
    assert (model["scale_kwh"] >= 0.02).all()


def test_a_flat_meter_does_not_turn_wiggles_into_anomalies() -> None:
    starts = pd.date_range("2026-03-01", periods=96, freq="15min", tz="UTC")
    energy = np.full(len(starts), 0.1)
    energy[::7] += 0.005
    frame = pd.DataFrame({"meter_id": "M1", "reading_start": starts, "energy_kwh": energy})
    scores, _ = score_baseline(frame, fit_baseline(frame), "v")
    assert not scores["is_anomaly"].any()


def test_meters_the_model_has_not_seen_are_left_unscored() -> None:
    model = fit_baseline(week("M1"))
    scores, unscored = score_baseline(week("NEW").iloc[:10], model, "v")
    assert scores.empty
    assert unscored == 10


def test_the_version_names_the_kind_and_changes_with_the_data() -> None:
    a = baseline_version(fit_baseline(week(seed=1)), "2026-03-01", "2026-03-07")
    b = baseline_version(fit_baseline(week(seed=2)), "2026-03-01", "2026-03-07")
    assert a.startswith(f"{BASELINE_KIND}@2026-03-07-")
    assert a != b
    assert a == baseline_version(fit_baseline(week(seed=1)), "2026-03-01", "2026-03-07")


def test_empty_input() -> None:
    empty = pd.DataFrame(columns=["meter_id", "reading_start", "energy_kwh"])
    model = fit_baseline(empty)
    assert model.empty
    scores, unscored = score_baseline(empty, model, "v")
    assert scores.empty and unscored == 0
