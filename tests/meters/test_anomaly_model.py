"""The expected-consumption model: features without look-ahead, a round trip through a real lake
directory, a +/-30 % step found per meter-day where the baseline sees nothing, and empty inputs."""

from __future__ import annotations

import io
from functools import cache
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest

from metrify_assets.contracts import UNREGISTERED
from metrify_assets.meters.anomaly import features, model
from metrify_assets.meters.anomaly.baseline import baseline_version, fit_baseline
from metrify_assets.meters.anomaly.scoring import score_run
from metrify_assets.meters.anomaly.store import StoredModels, load_current, save
from metrify_assets.resources.lake import Lake
from metrify_assets.storage.model_files import load_model, model_bytes

START = pd.Timestamp("2026-02-02", tz="UTC")  # a Monday
REGISTRY = pd.DataFrame(
    {
        "meter_id": [f"M{i}" for i in range(8)],
        "segment": ["residential"] * 6 + ["commercial"] * 2,
        "weather_station_id": "WX-1",
        "timezone": "Europe/London",
    }
)


def readings(days: int, seed: int = 1, start: pd.Timestamp = START) -> pd.DataFrame:
    """Eight meters with a daily shape, lower at weekends, multiplicative noise."""
    rng = np.random.default_rng(seed)
    starts = pd.date_range(start, periods=96 * days, freq="15min", tz="UTC")
    hour = starts.hour.to_numpy() + starts.minute.to_numpy() / 60
    weekend = starts.day_of_week.to_numpy() >= 5
    frames = []
    for i, meter in enumerate(REGISTRY["meter_id"]):
        shape = 0.3 + np.exp(-0.5 * ((hour - 19) / 2) ** 2) + 0.6 * np.exp(-0.5 * ((hour - 8) / 1) ** 2)
        level = (0.1 + 0.05 * i) * np.where(weekend, 0.8, 1.0)
        noise = np.exp(rng.normal(0, 0.15, len(starts)))
        frames.append(
            pd.DataFrame({"meter_id": meter, "reading_start": starts, "energy_kwh": shape * level * noise})
        )
    return pd.concat(frames, ignore_index=True)


def weather(days: int) -> pd.DataFrame:
    at = pd.date_range(START - pd.Timedelta(hours=1), periods=6 * 24 * (days + 1), freq="10min", tz="UTC")
    return pd.DataFrame(
        {"station_id": "WX-1", "observed_at": at, "temperature_c": 8 + np.sin(np.arange(len(at)) / 50)}
    )


@cache  # training is the slow part: each window is fitted once per session
def trained(days: int = 28) -> tuple[model.ExpectedModel, pd.DataFrame]:
    train = readings(days)
    fitted = model.fit(features.prepare(train, REGISTRY, weather(days)), "2026-02-02", "2026-03-01", "GB")
    assert fitted is not None
    return fitted, fit_baseline(train)


def test_a_feature_of_interval_t_uses_nothing_after_t() -> None:
    data, obs = readings(3), weather(3)
    t = pd.Timestamp("2026-02-03T12:00Z")
    full = features.prepare(data, REGISTRY, obs)
    changed_future = data.copy()
    changed_future.loc[changed_future["reading_start"] > t, "energy_kwh"] *= 5
    later = obs.copy()
    later.loc[later["observed_at"] > t, "temperature_c"] += 20
    cut = features.prepare(changed_future, REGISTRY, later)
    upto = (full["reading_start"] <= t).to_numpy()
    cols = ["local_date", "local_hour", "weekday", "holiday", "temperature_c", "segment"]
    pd.testing.assert_frame_equal(full.loc[upto, cols], cut.loc[upto, cols])
    at_t = full[(full["reading_start"] == t) & (full["meter_id"] == "M0")].iloc[0]
    latest = obs.loc[obs["observed_at"] <= t, "temperature_c"].iloc[-1]
    assert at_t["temperature_c"] == latest
    assert at_t["local_hour"] == 12.0 and at_t["weekday"] == 1 and at_t["segment"] == "residential"


def test_calendar_is_local_holidays_come_from_the_country_and_unknown_meters_are_utc() -> None:
    day = pd.DataFrame(
        {
            "meter_id": ["M0", "X9"],
            "reading_start": pd.to_datetime(["2026-04-03T23:30Z"] * 2),
            "energy_kwh": 0.1,
        }
    )
    prepared = features.prepare(day, REGISTRY, features.empty_weather())
    london, unknown = prepared.iloc[0], prepared.iloc[1]
    assert str(london["local_date"]) == "2026-04-04" and london["local_hour"] == 0.5  # BST
    assert str(unknown["local_date"]) == "2026-04-03" and unknown["holiday"] == 1  # Good Friday
    assert unknown["segment"] == UNREGISTERED and np.isnan(unknown["temperature_c"])


def test_train_save_load_and_score_round_trip_through_a_lake_directory(tmp_path: Path) -> None:
    fitted, base = trained()
    assert fitted.version.startswith(f"{model.MODEL_KIND}@2026-03-01-")
    assert set(fitted.metrics) >= {"mae_kwh", "r2", "holdout_days"} and fitted.metrics["r2"] > 0.5
    lake = Lake(str(tmp_path / "lake"))
    stored = StoredModels(fitted, base, baseline_version(base, "2026-02-02", "2026-03-01"))
    save(lake, stored)
    assert lake.exists(f"models/anomaly/{fitted.version}/model.joblib")
    loaded = load_current(lake)
    assert loaded is not None and loaded.version == fitted.version
    day = features.prepare(readings(1, seed=9, start=START + pd.Timedelta(days=28)), REGISTRY, weather(30))
    first = score_run(day, fitted, base)
    again = score_run(day, loaded.model, loaded.baseline)
    pd.testing.assert_frame_equal(first.readings, again.readings)
    pd.testing.assert_frame_equal(first.days, again.days)
    assert not first.days["is_anomaly"].any()


@pytest.mark.parametrize("factor", [1.3, 0.7])
def test_a_30_percent_step_is_found_per_meter_day_where_the_baseline_sees_nothing(factor: float) -> None:
    fitted, base = trained()
    week = readings(7, seed=5, start=START + pd.Timedelta(days=28))
    shifted = week["meter_id"] == "M2"
    week.loc[shifted, "energy_kwh"] *= factor
    scores = score_run(features.prepare(week, REGISTRY, weather(35)), fitted, base)
    days = scores.days
    flagged = days[days["is_anomaly"]]
    assert set(flagged["meter_id"]) == {"M2"}
    assert len(flagged) >= 6  # of 7 days
    assert (np.sign(flagged["score"]) == np.sign(factor - 1)).all()
    assert days.loc[days["meter_id"] == "M2", "ratio"].between(factor - 0.1, factor + 0.1).all()
    assert not scores.readings["baseline_is_anomaly"].any()
    assert (days["baseline_anomalies"] == 0).all()


def test_meters_newer_than_the_model_are_left_unscored() -> None:
    fitted, base = trained(14)
    new = readings(1, start=START + pd.Timedelta(days=14)).assign(meter_id="NEW")
    scores = score_run(features.prepare(new, REGISTRY, features.empty_weather()), fitted, base)
    assert scores.readings.empty and scores.days.empty
    assert scores.unscored == len(new)


def test_empty_inputs() -> None:
    empty = pd.DataFrame({"meter_id": [], "reading_start": pd.to_datetime([], utc=True), "energy_kwh": []})
    prepared = features.prepare(empty, features.empty_registry(), features.empty_weather())
    assert prepared.empty and list(prepared.columns) == features.PREPARED_COLUMNS
    assert model.fit(prepared, "2026-02-02", "2026-03-01", "GB") is None
    fitted, base = trained(14)
    scores = score_run(prepared, fitted, base)
    assert scores.readings.empty and scores.days.empty and scores.unscored == 0
    no_context = features.prepare(readings(1), features.empty_registry(), features.empty_weather())
    assert (no_context["segment"] == UNREGISTERED).all()
    assert no_context["temperature_c"].isna().all()


def test_bytes_round_trip_and_a_wrong_object_is_refused() -> None:
    fitted, _ = trained(14)
    assert load_model(model_bytes(fitted), model.ExpectedModel).version == fitted.version
    buffer = io.BytesIO()
    joblib.dump({"not": "a model"}, buffer)
    with pytest.raises(TypeError):
        load_model(buffer.getvalue(), model.ExpectedModel)


def test_a_window_without_weather_still_trains_and_scores() -> None:
    """No weather landed (a meters-only deployment, or the first days): temperature is all missing."""
    train = features.prepare(readings(3), REGISTRY, weather(0).iloc[0:0])
    assert train["temperature_c"].isna().all()
    fitted = model.fit(train, "2026-02-02", "2026-02-04", "GB")
    assert fitted is not None
    scored = score_run(train, fitted, fit_baseline(readings(3)))
    assert len(scored.readings) == len(train) and scored.readings["expected_kwh"].notna().all()
