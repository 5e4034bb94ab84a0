"""GX suites: the versioned JSON files load, clean frames pass, broken frames fail with counts."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from metrify_assets.quality.gx import EXPECTATIONS_DIR, combined, load_suite, suite_names, validate

SUITES = {
    "validated_meter_readings",
    "validated_grid_status",
    "validated_weather_observations",
    "raw_meter_readings",
    "raw_grid_status",
    "raw_weather_observations",
    "anomaly_scores",
    "enriched_meter_readings",
    "vee_meter_readings",
}


def meter_readings(n: int, meters: int = 100) -> pd.DataFrame:
    """Accepted-looking readings: n rows over `meters` meters, 15-minute grid, typed as decoded."""
    rng = np.random.default_rng(11)
    idx = np.arange(n)
    return pd.DataFrame(
        {
            "meter_id": pd.array([f"MTR-{i % meters:05d}" for i in idx], dtype="string"),
            "reading_start": pd.Timestamp("2026-03-01", tz="UTC").as_unit("us")
            + pd.to_timedelta((idx // meters) * 15, unit="min"),
            "interval_minutes": pd.array(np.full(n, 15), dtype="Int64"),
            "energy_kwh": rng.uniform(0.0, 2.0, n),
            "direction": pd.array(np.where(idx % 10 == 0, "export", "import"), dtype="string"),
            "register_kwh": rng.uniform(0, 1e5, n),
            "voltage_v": rng.uniform(215, 245, n),
            "power_factor": rng.uniform(0.85, 1.0, n),
            "status_flags": pd.array([pd.NA] * n, dtype="string"),
            "source": pd.array(["head-end"] * n, dtype="string"),
            "record_index": idx,
        }
    )


def test_every_suite_file_loads_and_round_trips() -> None:
    assert set(suite_names()) == SUITES
    for name in SUITES:
        suite = load_suite(name)
        on_disk = json.loads((EXPECTATIONS_DIR / f"{name}.json").read_text())
        assert suite.name == name
        assert len(suite.expectations) == len(on_disk["expectations"]) > 0
        assert suite.meta["key_columns"], name
        exported = suite.to_json_dict()
        assert [e["type"] for e in exported["expectations"]] == [e["type"] for e in on_disk["expectations"]]


def test_clean_frame_passes_the_validated_suite() -> None:
    result = validate("validated_meter_readings", meter_readings(2_000))
    assert result.success, [(e.expectation_type, e.column, e.observed_value) for e in result.failed]
    assert result.evaluated == result.successful == len(result.expectations) >= 10
    assert result.element_count == 2_000


def test_null_key_fails_with_its_count_and_key() -> None:
    df = meter_readings(500)
    rows = [3, 108, 221]  # three different reading_start values (100 meters per interval)
    df.loc[rows, "meter_id"] = pd.NA
    result = validate("validated_meter_readings", df)
    assert not result.success
    (failed,) = [e for e in result.failed if e.expectation_type == "expect_column_values_to_not_be_null"]
    assert failed.column == "meter_id"
    assert failed.unexpected_count == 3
    assert failed.unexpected_percent == pytest.approx(0.6)
    assert failed.failing_keys == tuple(f"None|{df.loc[i, 'reading_start'].isoformat()}" for i in rows)


def test_duplicate_key_fails_compound_uniqueness() -> None:
    df = meter_readings(500)
    df.loc[10, ["meter_id", "reading_start"]] = df.loc[9, ["meter_id", "reading_start"]].to_numpy()
    result = validate("validated_meter_readings", df)
    (failed,) = result.failed
    assert failed.expectation_type == "expect_compound_columns_to_be_unique"
    assert failed.column == "meter_id,reading_start"
    assert failed.unexpected_count == 2  # GX counts every row of a duplicated key
    assert failed.failing_keys == (f"{df.loc[9, 'meter_id']}|{df.loc[9, 'reading_start'].isoformat()}",)


def test_value_range_failure_samples_the_values() -> None:
    df = meter_readings(300)
    df.loc[[5, 6], "interval_minutes"] = 7
    result = validate("validated_meter_readings", df)
    (failed,) = result.failed
    assert failed.column == "interval_minutes"
    assert failed.unexpected_count == 2
    assert failed.unexpected_sample == ("7", "7")


def weather_observations(n: int) -> pd.DataFrame:
    """Accepted-looking observations of one station, typed as decoded, every fourth without humidity
    and rain and the last without any optional measure."""
    idx = np.arange(n)
    gaps = idx % 4 == 0
    frame = pd.DataFrame(
        {
            "station_id": pd.array(["WX-1"] * n, dtype="string"),
            "observed_at": pd.Timestamp("2026-03-01", tz="UTC").as_unit("us")
            + pd.to_timedelta(idx * 10, unit="min"),
            "temperature_c": np.full(n, 8.5),
            "humidity_pct": np.where(gaps, np.nan, 80.0),
            "pressure_hpa": np.full(n, 1012.0),
            "wind_speed_ms": np.full(n, 3.0),
            "precipitation_mm": np.where(gaps, np.nan, 0.2),
            "record_index": idx,
        }
    )
    frame.loc[n - 1, ["humidity_pct", "pressure_hpa", "wind_speed_ms", "precipitation_mm"]] = np.nan
    return frame


def test_weather_measures_a_station_did_not_report_pass_but_a_missing_temperature_fails() -> None:
    frame = weather_observations(40)
    for suite in ("raw_weather_observations", "validated_weather_observations"):
        result = validate(suite, frame)
        assert result.success, (suite, [(e.expectation_type, e.column) for e in result.failed])
    for suite in ("raw_weather_observations", "validated_weather_observations"):
        unreported = frame.assign(humidity_pct=np.nan, precipitation_mm=np.nan)
        assert validate(suite, unreported).success, suite  # a station without either instrument
    out_of_range = frame.copy()
    out_of_range.loc[1, "humidity_pct"] = 101.0  # present values still have their range
    (failed,) = validate("validated_weather_observations", out_of_range).failed
    assert (failed.column, failed.unexpected_count) == ("humidity_pct", 1)
    no_temperature = frame.copy()
    no_temperature.loc[[5, 6], "temperature_c"] = np.nan
    (failed,) = validate("validated_weather_observations", no_temperature).failed
    assert failed.expectation_type == "expect_column_values_to_not_be_null"
    assert (failed.column, failed.unexpected_count) == ("temperature_c", 2)


def test_raw_suite_requires_rows_and_columns() -> None:
    empty = meter_readings(10).iloc[0:0]
    result = validate("raw_meter_readings", empty)
    assert [e.expectation_type for e in result.failed] == ["expect_table_row_count_to_be_between"]
    missing = validate("raw_meter_readings", meter_readings(10).drop(columns=["energy_kwh"]))
    assert [e.column for e in missing.failed] == ["energy_kwh"]


def test_anomaly_scores_must_be_finite() -> None:
    df = pd.DataFrame(
        {
            "meter_id": pd.array(["MTR-1", "MTR-1", "MTR-2"], dtype="string"),
            "reading_start": pd.to_datetime(["2026-03-01T00:00Z", "2026-03-01T00:15Z", "2026-03-01T00:00Z"]),
            "score": [0.3, np.inf, -1.2],
            "is_anomaly": [False, True, False],
            "model_version": pd.array(["robust-z-1"] * 3, dtype="string"),
            "expected_kwh": [0.2, 0.3, 0.1],
            "baseline_score": [0.5, np.nan, -1.0],  # null: the baseline had no meter-hour
            "baseline_is_anomaly": pd.array([False, pd.NA, False], dtype="boolean"),
        }
    )
    assert validate("anomaly_scores", df.assign(score=[0.3, 4.0, -1.2])).success
    result = validate("anomaly_scores", df)
    assert [(e.column, e.unexpected_count) for e in result.failed] == [("score", 1)]


def test_enriched_suite_checks_tou_period_and_hour() -> None:
    df = pd.DataFrame(
        {
            "meter_id": pd.array(["MTR-1", "MTR-2"], dtype="string"),
            "reading_start": pd.to_datetime(["2026-03-01T17:00Z", "2026-03-01T17:00Z"]),
            "tou_period": pd.array(["peak", "evening"], dtype="string"),
            "local_date": [pd.Timestamp("2026-03-01").date()] * 2,
            "local_hour": [17, 24],
            "segment": pd.array(["residential", pd.NA], dtype="string"),
        }
    )
    result = validate("enriched_meter_readings", df)
    assert sorted((e.column, e.unexpected_count) for e in result.failed) == [
        ("local_hour", 1),
        ("tou_period", 1),
    ]


def test_a_suite_directory_can_be_passed(tmp_path: Path) -> None:
    suite = {
        "name": "tiny",
        "expectations": [
            {"type": "expect_column_values_to_be_between", "kwargs": {"column": "x", "max_value": 5}}
        ],
        "meta": {"key_columns": ["k"]},
    }
    (tmp_path / "tiny.json").write_text(json.dumps(suite))
    df = pd.DataFrame({"k": pd.array(["a", "b"], dtype="string"), "x": [1.0, 9.0]})
    result = validate("tiny", df, directory=tmp_path)
    assert result.suite_name == "tiny"
    assert result.failed[0].failing_keys == ("b",)
    with pytest.raises(FileNotFoundError):
        validate("validated_meter_readings", df, directory=tmp_path)


def test_an_invalid_expectation_is_refused_not_dropped(tmp_path: Path) -> None:
    unknown = {"name": "bad", "expectations": [{"type": "expect_unicorns", "kwargs": {}}]}
    (tmp_path / "bad.json").write_text(json.dumps(unknown))
    with pytest.raises(ValueError, match="invalid"):  # GX itself only logs and drops it
        load_suite("bad", tmp_path)
    between = {"type": "expect_column_values_to_be_between", "kwargs": {}}
    no_bounds = {"name": "bad", "expectations": [between]}
    (tmp_path / "bad.json").write_text(json.dumps(no_bounds))
    with pytest.raises(ValueError, match="min_value and max_value"):
        load_suite("bad", tmp_path)


def test_timing_of_100k_rows() -> None:
    df = meter_readings(100_000, meters=1_000)
    validate("validated_meter_readings", df.head(100))  # warm the cached context and suite
    started = time.perf_counter()
    result = validate("validated_meter_readings", df)
    elapsed = time.perf_counter() - started
    print(f"\nGX validated_meter_readings: {result.evaluated} expectations x 100,000 rows in {elapsed:.3f} s")
    assert result.success


def test_vee_series_suite_refuses_an_unknown_status_and_a_duplicate_interval() -> None:
    start = pd.Timestamp("2026-06-10", tz="UTC")
    df = pd.DataFrame(
        {
            "meter_id": ["M1", "M1", "M1"],
            "reading_start": [start, start + pd.Timedelta(minutes=15), start + pd.Timedelta(minutes=30)],
            "local_date": [start.date()] * 3,
            "interval_minutes": [15, 15, 15],
            "energy_kwh": [0.2, None, 0.3],
            "direction": ["import"] * 3,
            "original_kwh": [0.2, None, 0.3],
            "status": ["actual", "missing", "estimated"],
            "method": ["actual", "none", "linear_interpolation"],
            "reasons": ["", "gap", "spike"],
        }
    )
    assert validate("vee_meter_readings", df).success
    bad = validate("vee_meter_readings", df.assign(status=["actual", "lost", "actual"]))
    assert [e.column for e in bad.failed] == ["status"]
    duplicated = validate("vee_meter_readings", df.assign(reading_start=[start] * 3))
    assert [e.column for e in duplicated.failed] == ["meter_id,reading_start"]


def test_a_suite_over_disjoint_parts_combines_to_the_whole_frames_result() -> None:
    """A run validated in groups of meters reports what one validation of all its rows would."""
    frame = meter_readings(3_000, meters=30)
    frame.loc[[5, 2_500], "energy_kwh"] = 5_000.0  # out of range, one in each of two parts
    frame.loc[1_700, "meter_id"] = pd.NA  # a null key in the middle part
    parts = [
        frame[frame.index < 1_000],
        frame[(frame.index >= 1_000) & (frame.index < 2_000)],
        frame[frame.index >= 2_000],
    ]
    whole = validate("validated_meter_readings", frame)
    merged = combined([validate("validated_meter_readings", p) for p in parts])
    assert not whole.success and not merged.success
    assert (merged.element_count, merged.evaluated, merged.successful) == (
        whole.element_count,
        whole.evaluated,
        whole.successful,
    )
    counts = {(e.expectation_type, e.column): e.unexpected_count for e in merged.failed}
    assert counts == {(e.expectation_type, e.column): e.unexpected_count for e in whole.failed}
    energy = next(e for e in merged.failed if e.column == "energy_kwh")
    assert energy.unexpected_count == 2 and energy.unexpected_sample == ("5000.0", "5000.0")
    clean = combined(
        [validate("validated_meter_readings", p) for p in (parts[0].iloc[10:], parts[2].iloc[:400])]
    )
    assert clean.success and clean.element_count == 1_390


def test_configurations_built_once_change_no_result() -> None:
    """The per-validation configuration memo gives GX's own results, and ends with the validation."""
    from great_expectations.expectations.expectation import Expectation
    from great_expectations.validator.v1_validator import Validator

    from metrify_assets.quality.gx import _built, _configurations_built_once, _runner

    df = meter_readings(400)
    df.loc[[3, 4], "interval_minutes"] = 7
    df.loc[8, "energy_kwh"] = 5_000.0
    df.loc[10, ["meter_id", "reading_start"]] = df.loc[9, ["meter_id", "reading_start"]].to_numpy()
    vd, _ = _runner(EXPECTATIONS_DIR.resolve()).definition("validated_meter_readings")

    def results(memo: bool) -> list[dict]:
        validator = Validator(
            vd.batch_definition, result_format="COMPLETE", batch_parameters={"dataframe": df}
        )
        if not memo:
            return [r.to_json_dict() for r in validator.validate_expectation_suite(vd.suite).results]
        with _configurations_built_once():
            expectation = vd.suite.expectations[0]
            assert expectation.configuration is expectation.configuration  # built once inside
            return [r.to_json_dict() for r in validator.validate_expectation_suite(vd.suite).results]

    with_memo, without = results(memo=True), results(memo=False)
    assert with_memo == without
    assert sum(not r["success"] for r in without) == 3  # interval, energy range, compound key
    assert _built.memo is None
    first = vd.suite.expectations[0]
    assert first.configuration is not first.configuration  # GX's own property again outside
    assert isinstance(first, Expectation)
