"""Record rules: each reason fires on a crafted record and stays silent on clean batches."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from metrify_assets.quality.rules import REASONS, RuleConfig, evaluate

NOW = pd.Timestamp("2026-03-10T12:00:00Z")
START = pd.Timestamp("2026-03-10T00:00:00Z")


STRING_COLUMNS = {"meter_id", "direction", "status_flags", "source", "grid_node_id", "station_id"}


def _typed(rows: list[dict[str, Any]], time_field: str) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    for col in df.columns:
        if col == time_field:
            df[col] = pd.to_datetime(df[col], utc=True).dt.as_unit("us")
        elif col == "interval_minutes":
            df[col] = df[col].astype("Int64")
        elif col in STRING_COLUMNS:
            df[col] = df[col].astype("string")
        else:
            df[col] = df[col].astype("float64")
    df["record_index"] = np.arange(len(df))
    return df


def meters(n_meters: int = 3, n_intervals: int = 12, **overrides: Any) -> list[dict[str, Any]]:
    """A clean batch of 15-minute readings with a realistic, varying load."""
    rng = np.random.default_rng(7)
    rows = []
    for m in range(n_meters):
        for i in range(n_intervals):
            rows.append(
                {
                    "meter_id": f"MTR-{m:05d}",
                    "reading_start": START + pd.Timedelta(minutes=15 * i),
                    "interval_minutes": 15,
                    "energy_kwh": float(rng.uniform(0.2, 0.6)),
                    "direction": None,
                    "register_kwh": 1000.0 + i,
                    "voltage_v": 231.0,
                    "power_factor": 0.95,
                    "status_flags": None,
                    "source": "head-end",
                }
                | overrides
            )
    return rows


def meter_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return _typed(rows, "reading_start")


def grid(n: int = 6, **overrides: Any) -> list[dict[str, Any]]:
    return [
        {
            "grid_node_id": "GN-01",
            "measured_at": START + pd.Timedelta(minutes=i),
            "frequency_hz": 50.02,
            "voltage_v": 230.5,
            "load_mw": 42.0,
            "capacity_mw": 100.0,
        }
        | overrides
        for i in range(n)
    ]


def weather(n: int = 6, **overrides: Any) -> list[dict[str, Any]]:
    return [
        {
            "station_id": "WS-01",
            "observed_at": START + pd.Timedelta(hours=i),
            "temperature_c": 8.5,
            "humidity_pct": 80.0,
            "pressure_hpa": 1012.0,
            "wind_speed_ms": 4.2,
            "precipitation_mm": 0.0,
        }
        | overrides
        for i in range(n)
    ]


def test_clean_batches_are_accepted() -> None:
    for source, df in (
        ("meter_readings", meter_frame(meters())),
        ("grid_status", _typed(grid(), "measured_at")),
        ("weather_observations", _typed(weather(), "observed_at")),
    ):
        outcome = evaluate(source, df, NOW)
        assert (outcome.decision == "accept").all(), (source, outcome.reasons[outcome.reasons != ""])
        assert (outcome.reasons == "").all()
        assert sum(outcome.reason_counts().values()) == 0
        assert outcome.decision_counts() == {"accept": len(df), "flag": 0, "reject": 0}


METER_CASES: list[tuple[str, dict[str, Any]]] = [
    ("negative_energy", {"energy_kwh": -0.3}),
    ("interval_invalid", {"interval_minutes": 7}),
    ("timestamp_misaligned", {"reading_start": START + pd.Timedelta(minutes=15 * 4 + 7)}),
    ("timestamp_in_future", {"reading_start": NOW + pd.Timedelta(minutes=30)}),
    ("timestamp_implausible", {"reading_start": pd.Timestamp("1970-01-01T00:00:00Z")}),  # a clock reset
    ("direction_invalid", {"direction": "sideways"}),
    ("energy_implausible", {"energy_kwh": 1500.0}),
    ("spike", {"energy_kwh": 9.0}),
    ("voltage_out_of_range", {"voltage_v": 260.0}),
    ("voltage_implausible", {"voltage_v": 900.0}),
    ("power_factor_out_of_range", {"power_factor": 0.5}),
    ("power_factor_implausible", {"power_factor": 1.7}),
]


@pytest.mark.parametrize(("code", "change"), METER_CASES, ids=[c for c, _ in METER_CASES])
def test_each_meter_reason_fires_on_its_record(code: str, change: dict[str, Any]) -> None:
    rows = meters()
    rows[4] = rows[4] | change
    df = meter_frame(rows)
    outcome = evaluate("meter_readings", df, NOW)
    assert outcome.reasons.iloc[4].split(",") == [code]
    assert outcome.decision.iloc[4] == REASONS[code].decision
    others = outcome.decision.drop(index=df.index[4])
    assert (others == "accept").all()
    assert outcome.reason_counts()[code] == 1


def test_export_energy_is_not_negative_energy() -> None:
    rows = meters()
    rows[3] = rows[3] | {"energy_kwh": -0.4, "direction": "export"}
    outcome = evaluate("meter_readings", meter_frame(rows), NOW)
    assert outcome.decision.iloc[3] == "accept"
    assert outcome.reasons.iloc[3] == ""


def test_clock_shifted_hour_is_misaligned_for_15_minute_readings_only() -> None:
    rows = meters(n_meters=1, n_intervals=4)
    rows[1] = rows[1] | {"reading_start": START + pd.Timedelta(minutes=15 + 30), "interval_minutes": 30}
    rows[2] = rows[2] | {"reading_start": START + pd.Timedelta(minutes=30, seconds=20)}
    outcome = evaluate("meter_readings", meter_frame(rows), NOW)
    assert outcome.reasons.iloc[1] == "timestamp_misaligned"  # 00:45 is not on a 30-minute grid
    assert outcome.reasons.iloc[2] == "timestamp_misaligned"


def test_future_allows_one_interval_of_clock_skew() -> None:
    rows = meters(n_meters=1, n_intervals=2)
    rows[0]["reading_start"] = NOW + pd.Timedelta(minutes=15)  # exactly now + 1 interval: allowed
    rows[1]["reading_start"] = NOW + pd.Timedelta(minutes=30)
    outcome = evaluate("meter_readings", meter_frame(rows), NOW)
    assert list(outcome.reasons) == ["", "timestamp_in_future"]


def test_duplicates_keep_the_first_arrival() -> None:
    rows = meters(n_meters=1, n_intervals=4)
    exact = dict(rows[1])
    conflict = rows[2] | {"energy_kwh": 0.99}
    df = meter_frame([*rows, exact, conflict])
    outcome = evaluate("meter_readings", df, NOW)
    assert list(outcome.reasons) == ["", "", "", "", "duplicate_exact", "duplicate_conflict"]
    assert list(outcome.decision) == ["accept"] * 4 + ["reject"] * 2


def test_duplicates_follow_record_index_not_row_order() -> None:
    rows = meters(n_meters=1, n_intervals=2)
    later = rows[0] | {"energy_kwh": 0.77}
    df = meter_frame([later, *rows])
    df["record_index"] = [5, 0, 1]  # the first row arrived last
    outcome = evaluate("meter_readings", df, NOW)
    assert list(outcome.reasons) == ["duplicate_conflict", "", ""]


def test_zero_run_needs_eight_back_to_back_intervals() -> None:
    rows = meters(n_meters=2, n_intervals=12)
    for i in range(2, 10):  # meter 0: 8 zeros in a row
        rows[i]["energy_kwh"] = 0.0
    for i in range(14, 21):  # meter 1: only 7 zeros
        rows[i]["energy_kwh"] = 0.0
    outcome = evaluate("meter_readings", meter_frame(rows), NOW)
    flagged = outcome.reasons == "zero_run"
    assert list(np.flatnonzero(flagged)) == list(range(2, 10))
    assert outcome.reason_counts()["zero_run"] == 8


def test_zero_run_is_ordered_by_time_and_broken_by_gaps() -> None:
    rows = meters(n_meters=1, n_intervals=10)
    for r in rows:
        r["energy_kwh"] = 0.0
    shuffled = meter_frame(rows).sample(frac=1.0, random_state=3)
    assert evaluate("meter_readings", shuffled, NOW).reason_counts()["zero_run"] == 10
    gapped = meter_frame([r for i, r in enumerate(rows) if i != 5])  # 5 + 4 zeros around a gap
    assert evaluate("meter_readings", gapped, NOW).reason_counts()["zero_run"] == 0


def test_spike_needs_the_absolute_floor() -> None:
    rows = meters(n_meters=1, n_intervals=10, energy_kwh=0.01)
    rows[3]["energy_kwh"] = 0.3  # 30x the median but below the 0.5 kWh floor
    outcome = evaluate("meter_readings", meter_frame(rows), NOW)
    assert outcome.reason_counts()["spike"] == 0
    strict = evaluate("meter_readings", meter_frame(rows), NOW, RuleConfig(spike_floor_kwh=0.1))
    assert strict.reasons.iloc[3] == "spike"


def test_reject_takes_precedence_over_flag_and_all_reasons_are_kept() -> None:
    rows = meters()
    rows[2] = rows[2] | {"voltage_v": 260.0, "energy_kwh": -1.0}
    rows[5] = rows[5] | {"voltage_v": 260.0, "power_factor": 0.5}
    outcome = evaluate("meter_readings", meter_frame(rows), NOW)
    assert outcome.decision.iloc[2] == "reject"
    assert set(outcome.reasons.iloc[2].split(",")) == {"negative_energy", "voltage_out_of_range"}
    assert outcome.decision.iloc[5] == "flag"
    assert set(outcome.reasons.iloc[5].split(",")) == {"voltage_out_of_range", "power_factor_out_of_range"}
    assert list(outcome.decision.cat.categories) == ["accept", "flag", "reject"]


def test_outcome_is_aligned_to_the_input_index() -> None:
    df = meter_frame(meters()).set_axis(range(100, 136))
    df.loc[110, "energy_kwh"] = -2.0
    outcome = evaluate("meter_readings", df, NOW)
    assert outcome.decision.index.equals(df.index)
    assert outcome.decision.loc[110] == "reject"


GRID_CASES: list[tuple[str, dict[str, Any]]] = [
    ("frequency_out_of_range", {"frequency_hz": 49.3}),
    ("frequency_implausible", {"frequency_hz": 56.0}),
    ("voltage_out_of_range", {"voltage_v": 200.0}),
    ("load_negative_implausible", {"load_mw": -150.0}),
    ("load_negative_implausible", {"capacity_mw": 0.0}),
    ("timestamp_in_future", {"measured_at": NOW + pd.Timedelta(hours=1)}),
    ("timestamp_implausible", {"measured_at": pd.Timestamp("1970-01-01T00:00:00Z")}),
    ("voltage_implausible", {"voltage_v": -230.0}),
]


@pytest.mark.parametrize(("code", "change"), GRID_CASES)
def test_each_grid_reason_fires(code: str, change: dict[str, Any]) -> None:
    rows = grid()
    rows[1] = rows[1] | change
    outcome = evaluate("grid_status", _typed(rows, "measured_at"), NOW)
    assert outcome.reasons.iloc[1] == code
    assert outcome.decision.iloc[1] == REASONS[code].decision
    assert (outcome.decision.drop(index=1) == "accept").all()


def test_grid_band_follows_a_60_hz_nominal() -> None:
    rows = grid(frequency_hz=60.1)
    rows[2]["frequency_hz"] = 50.0
    outcome = evaluate("grid_status", _typed(rows, "measured_at"), NOW, RuleConfig(grid_nominal_hz=60.0))
    assert list(outcome.decision) == ["accept", "accept", "reject", "accept", "accept", "accept"]
    assert outcome.reasons.iloc[2] == "frequency_implausible"


def test_grid_without_capacity_is_not_judged_on_load() -> None:
    rows = grid(capacity_mw=None, load_mw=-5.0)
    outcome = evaluate("grid_status", _typed(rows, "measured_at"), NOW)
    assert (outcome.decision == "accept").all()


WEATHER_CASES: list[tuple[str, dict[str, Any]]] = [
    ("temperature_implausible", {"temperature_c": 75.0}),
    ("humidity_implausible", {"humidity_pct": 101.0}),
    ("pressure_implausible", {"pressure_hpa": 700.0}),
    ("wind_implausible", {"wind_speed_ms": -1.0}),
    ("precipitation_implausible", {"precipitation_mm": -0.2}),
    ("timestamp_in_future", {"observed_at": NOW + pd.Timedelta(days=1)}),
    ("timestamp_implausible", {"observed_at": pd.Timestamp("1999-12-31T23:00:00Z")}),
    ("duplicate_exact", {"observed_at": START}),
]


@pytest.mark.parametrize(("code", "change"), WEATHER_CASES)
def test_each_weather_reason_fires(code: str, change: dict[str, Any]) -> None:
    rows = weather()
    rows[1] = rows[1] | change
    outcome = evaluate("weather_observations", _typed(rows, "observed_at"), NOW)
    assert outcome.reasons.iloc[1] == code
    assert outcome.decision.iloc[1] == "reject"
    assert (outcome.decision.drop(index=1) == "accept").all()


def test_a_weather_measure_the_station_did_not_report_fails_no_rule() -> None:
    """Humidity, pressure, wind and precipitation are optional: a null is not judged, a present value
    still is (humidity 101 % beside a missing rain gauge is rejected)."""
    rows = weather(humidity_pct=None, pressure_hpa=None, wind_speed_ms=None, precipitation_mm=None)
    rows[2] = rows[2] | {"humidity_pct": 101.0}
    rows[3] = rows[3] | {"wind_speed_ms": -1.0}
    rows[4] = rows[4] | {"observed_at": START}  # the same observation again, nulls and all
    outcome = evaluate("weather_observations", _typed(rows, "observed_at"), NOW)
    assert list(outcome.reasons) == [
        "",
        "",
        "humidity_implausible",
        "wind_implausible",
        "duplicate_exact",
        "",
    ]
    assert list(outcome.decision) == ["accept", "accept", "reject", "reject", "reject", "accept"]


def test_unknown_source_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown source"):
        evaluate("tide_gauges", meter_frame(meters()), NOW)


def test_an_empty_batch_yields_an_empty_outcome() -> None:
    df = meter_frame(meters()).iloc[0:0]
    outcome = evaluate("meter_readings", df, NOW)
    assert len(outcome.decision) == len(outcome.reasons) == 0
    assert outcome.decision_counts() == {"accept": 0, "flag": 0, "reject": 0}
    assert set(outcome.reason_counts()) == {c for c in REASONS if c not in GRID_OR_WEATHER_ONLY}


GRID_OR_WEATHER_ONLY = {
    "frequency_implausible",
    "frequency_out_of_range",
    "load_negative_implausible",
    "temperature_implausible",
    "humidity_implausible",
    "pressure_implausible",
    "wind_implausible",
    "precipitation_implausible",
}
