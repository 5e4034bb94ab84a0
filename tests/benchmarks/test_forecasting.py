"""The forecasting benchmark's parts that need no forecasting: the simulator's series are the values
`simulate` makes (before faults), summed right per region x segment, with load up to the forecast
day and temperature through it; and the accuracy table pools and ranks what it is given."""

from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from benchmarks.cases.forecasting import SIMULATED_DAYS, accuracy, best_method, simulated_load
from metrify_assets.forecasting.series import day_origin
from metrify_assets.simulation import SimulationConfig, simulate


def test_simulated_load_is_the_simulators_clean_readings_and_weather() -> None:
    load = simulated_load(6, seed=5)
    # Hourly grid samples from one node: the grid draws from its own seed, and minutes cost seconds.
    config = SimulationConfig(
        meters=6, days=SIMULATED_DAYS, seed=5, fault_rate=0.0, grid_nodes=1, grid_interval_minutes=60
    )
    sim = simulate(config)
    assert load.forecast_day == sim.config.start + timedelta(days=SIMULATED_DAYS - 1)
    readings = pd.DataFrame(
        r for m in sim.messages["meter_readings"] for r in json.loads(m).get("records", [json.loads(m)])
    )
    readings["at"] = pd.to_datetime(readings["reading_start"], utc=True, format="ISO8601")
    origin = day_origin(load.forecast_day, sim.config.timezone)
    for meter, rows in readings.groupby("meter_id"):
        expected = rows.set_index("at")["energy_kwh"].sort_index()
        series = load.meters[str(meter)]
        assert series.load.index.max() < origin <= series.temperature.index.max()
        pd.testing.assert_series_equal(
            series.load,
            expected[expected.index < origin],
            check_names=False,
            check_index_type=False,
            check_freq=False,
        )
    weather = pd.DataFrame(json.loads(m) for m in sim.messages["weather_observations"])
    station = sim.meters["weather_station_id"].iloc[0]
    mine = weather[weather["station_id"] == station].iloc[:3]  # at :00, :10 and :20 past midnight
    temperature = load.meters[sim.meters["meter_id"].iloc[0]].temperature
    stamps = [pd.Timestamp(t).tz_convert("UTC") for t in mine["observed_at"]]
    assert temperature[stamps[0]] == pytest.approx(mine["temperature_c"].iloc[:2].mean())  # one quarter-hour
    assert temperature[stamps[2] - pd.Timedelta(minutes=5)] == mine["temperature_c"].iloc[2]

    names = sim.meters["region"] + "/" + sim.meters["segment"]
    assert sorted(load.aggregates) == sorted(names.unique())
    for name, ids in sim.meters.groupby(names)["meter_id"]:
        summed = sum(load.meters[i].load for i in ids)
        np.testing.assert_allclose(load.aggregates[str(name)].load, summed)


def summary(maes: dict[str, float], n: float = 96.0) -> pd.DataFrame:
    rows = [
        {"method": m, "n": n, "mae": v, "mape": 10 * v, "smape": 5 * v, "coverage": 0.8}
        for m, v in maes.items()
    ]
    return pd.DataFrame(rows)


def test_accuracy_pools_by_intervals_and_counts_series_won() -> None:
    table = accuracy(
        {
            "a": summary({"model": 1.0, "seasonal_naive": 2.0, "weekday_mean": 3.0, "persistence": 0.1}),
            "b": summary({"model": 4.0, "seasonal_naive": 2.0, "weekday_mean": 1.0}, n=288.0),
            "c": summary({"model": 1.0, "seasonal_naive": 9.0, "weekday_mean": 9.0}),
        }
    )
    assert list(table.index) == ["model", "seasonal_naive", "weekday_mean", "persistence"]
    # won as a run chooses: "a" by persistence (the model does not beat it), "b" by the weekday mean
    assert table["won"].to_dict() == {"model": 1, "seasonal_naive": 0, "weekday_mean": 1, "persistence": 1}
    assert table.loc["model", "mae"] == pytest.approx((96 * 1.0 + 288 * 4.0 + 96 * 1.0) / 480)
    assert table.loc["weekday_mean", "intervals"] == 480 and table.loc["model", "series"] == 3
    assert best_method(table) == "persistence"  # three tie on one series won: the lowest pooled MAE


def test_best_method_breaks_a_tie_in_series_won_by_pooled_mae() -> None:
    table = accuracy(
        {
            "a": summary({"model": 1.0, "seasonal_naive": 2.0, "weekday_mean": 3.0}),
            "b": summary({"model": 9.0, "seasonal_naive": 2.0, "weekday_mean": 1.0}),
        }
    )
    assert table.loc[["model", "seasonal_naive", "weekday_mean"], "won"].to_dict() == {
        "model": 1,
        "seasonal_naive": 0,
        "weekday_mean": 1,
    }
    assert best_method(table) == "weekday_mean"


def test_a_series_whose_backtest_compared_nothing_is_won_by_none() -> None:
    """One method scored (a young series): its choice is persistence by default, not a win."""
    young = summary({"persistence": 0.5, "model": np.nan, "seasonal_naive": np.nan, "weekday_mean": np.nan})
    table = accuracy(
        {"old": summary({"model": 1.0, "seasonal_naive": 2.0, "weekday_mean": 3.0}), "young": young}
    )
    assert table["won"].to_dict() == {"model": 1, "seasonal_naive": 0, "weekday_mean": 0, "persistence": 0}
